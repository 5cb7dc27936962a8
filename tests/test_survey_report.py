"""Pair comparison export (module and command line), the charts and the self-contained HTML report."""

import html
import random
import re
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select

from conftest import error_line, exit_status
from survey.__main__ import main
from survey.answers import submit_choice, submit_rating
from survey.charts import SIGNIFICANCE_COLOURS, heatmap, scores_chart, significance_matrix
from survey.creation import create_study
from survey.db import LEFT, PC, RIGHT, TIE, Stimulus, Store
from survey.export import CHOICES_COLUMNS, CODES_COLUMNS, PC_CSV_FILES, PC_RATERS_COLUMNS, REPORT_FILE, export_study
from survey.pairwise import SCORE_COLUMNS, WINS_COLUMNS
from survey.raters import start_rater
from survey.report import PC_SCORES, PC_WINS, html_table, rounded
from survey.studies import StudySummary
from survey.ui.results import results_show
from tests.survey_fixtures import image_folder, set_response_times

#: How the simulated raters rank the conditions (higher is better); equal ranks are answered "no difference".
RANK = {"nearest": 0, "bicubic": 1, "reference": 2}
#: Addresses that would make a report depend on something outside it (the SVG namespace is only a name).
EXTERNAL = re.compile(r"(?:src|href)\s*=|https?://(?!www\.w3\.org/2000/svg)|<script|<link|@import", re.IGNORECASE)


@pytest.fixture()
def compared(store: Store, tmp_path: Path) -> StudySummary:
    """2 images × (bicubic, reference, nearest), ties allowed: 6 pairs per rater. Raters 0–2 follow :data:`RANK`
    (rater 2 calls bicubic and nearest equal); rater 3 stops after 2 choices. Everyone takes a person's time."""
    folder = image_folder(tmp_path / "hr", n_images=2)
    summary = create_study(
        store, "pc-export", folder, ["bicubic"], reference=True, anchors=True, protocol=PC, allow_tie=True
    )
    with store.session() as session:
        condition = {s.public_id: s.condition.name for s in session.scalars(select(Stimulus))}
    for rater in range(4):
        state = start_rater(store, summary.public_id, rng=random.Random(rater))
        for _ in range(6 if rater < 3 else 2):
            a, b = (condition[token] for token in state.pair or ())
            tie = rater == 2 and {a, b} == {"bicubic", "nearest"}
            choice = TIE if tie else LEFT if RANK[a] > RANK[b] else RIGHT
            state = submit_choice(store, summary.public_id, state.token, state.stimulus or "", choice)
    set_response_times(store)
    return summary


def test_pc_export_writes_the_documented_files(store: Store, compared: StudySummary, tmp_path: Path) -> None:
    paths = export_study(store, "pc-export", tmp_path / "out", exclude_flagged=False)
    assert [p.name for p in paths] == [*PC_CSV_FILES, REPORT_FILE]
    tables = {p.name: pd.read_csv(p, keep_default_na=False, na_values=[""]) for p in paths[:-1]}
    choices, scores, wins, codes, raters = (tables[name] for name in PC_CSV_FILES)
    assert list(choices.columns) == CHOICES_COLUMNS and len(choices) == 3 * 6 + 2
    assert list(scores.columns) == SCORE_COLUMNS and list(wins.columns) == WINS_COLUMNS
    assert list(raters.columns) == PC_RATERS_COLUMNS
    decided = choices[choices["choice"] != TIE]
    expected = decided["left"].where(decided["choice"] == LEFT, decided["right"])
    assert decided["winner"].tolist() == expected.tolist()
    assert choices.loc[choices["choice"] == TIE, "winner"].isna().all() and (choices["choice"] == TIE).sum() == 2
    assert list(scores.sort_values("score")["method"]) == sorted(RANK, key=RANK.get)
    assert scores["n_comparisons"].sum() == 2 * len(choices)
    assert wins[["wins_a", "wins_b", "ties"]].to_numpy().sum() == len(choices)
    row = wins.set_index(["method_a", "method_b"]).loc[("bicubic", "nearest")]
    assert row["wins_a"] >= 2 * 2 and (row["wins_b"], row["ties"]) == (0, 2)  # raters 0 and 1 on 2 images; rater 2
    assert raters["n_choices"].tolist() == [6, 6, 6, 2] and raters["ties"].tolist() == [0, 0, 2, 0]
    assert (raters["agreement"] == 1.0).all()  # everyone chose the better condition whenever they chose
    assert raters["status"].tolist() == ["accepted"] * 3 + ["rejected"]  # rater 3 did not finish
    assert raters["reasons"].fillna("").tolist() == ["", "", "", "incomplete: 2 of 6 answered"]
    assert codes["rater"].tolist() == [1, 2, 3] and list(codes.columns) == CODES_COLUMNS


def test_the_command_line_creates_and_exports_a_pair_comparison(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    images = str(image_folder(tmp_path / "hr"))
    create = [*data, "create", "--name", "cli-pc", "--images", images, "--methods", "bicubic", "--anchors"]
    assert exit_status(main, [*create, "--protocol", "pc", "--allow-tie", "--presentation", "side-by-side"]) == 0
    assert "cli-pc [open] pair comparison" in capsys.readouterr().out
    assert exit_status(main, [*data, "export", "--study", "cli-pc", "--out", str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted([*PC_CSV_FILES, REPORT_FILE])
    capsys.readouterr()
    acr_with_ties = [*data, "create", "--name", "acr", "--images", images, "--methods", "bicubic", "--allow-tie"]
    assert exit_status(main, acr_with_ties) == 1
    assert "options of pair comparison studies" in error_line(capsys)


def test_the_html_report_is_self_contained_and_describes_the_design(
    store: Store, compared: StudySummary, tmp_path: Path
) -> None:
    page = export_study(store, "pc-export", tmp_path / "out")[-1]
    assert page.name == REPORT_FILE
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and not EXTERNAL.search(text), EXTERNAL.search(text)
    assert text.count("<svg") == 2  # the scores chart and the significance matrix, inline
    design = [
        "pair comparison (2AFC)", "Images (2): photo0, photo1", "bicubic, reference, nearest",
        "Raters: 4 (3 finished); 20 choices", "Exclusions: 1 rater (4) rejected; left out of the analysis",
        "ties (&#x27;no difference&#x27;) allowed",
    ]  # fmt: skip
    for shown in design:
        assert shown in text, shown
    for label in (PC_SCORES, PC_WINS):
        assert html.escape(label) in text


def test_an_acr_report_has_the_mos_charts_and_names_the_flagged_raters(store: Store, tmp_path: Path) -> None:
    folder = image_folder(tmp_path / "hr", n_images=2)
    summary = create_study(store, "acr <report>", folder, ["bicubic"], reference=True, anchors=True)
    with store.session() as session:
        condition = {s.public_id: s.condition.name for s in session.scalars(select(Stimulus))}
    for rater in range(5):
        state = start_rater(store, summary.public_id, rng=random.Random(rater))
        while not state.finished:
            score = {"nearest": 1, "bicubic": 3, "reference": 5}[condition[state.stimulus or ""]]
            if rater == 4:  # a rater who scores the opposite way
                score = 6 - score
            state = submit_rating(store, summary.public_id, state.token, state.stimulus or "", score)
    set_response_times(store)
    for exclude, kept in ((False, "kept in the analysis"), (True, "left out of the analysis")):
        text = export_study(store, summary.name, tmp_path / str(exclude), exclude_flagged=exclude)[-1].read_text()
        assert "<h1>acr &lt;report&gt;</h1>" in text and not EXTERNAL.search(text)
        assert text.count("<svg") == 3  # MOS chart, significance matrix, heatmap
        assert f"Exclusions: 1 rater (5) rejected; {kept}" in text
        assert "correlation with the MOS r = -1.00 &lt; 0.75" in text
        assert "ci95_low_boot" in text and "absolute category rating" in text


def test_the_significance_matrix_colours_who_is_better_and_whether_it_is_significant() -> None:
    pairs = pd.DataFrame(
        {
            "method_a": ["a", "a", "b"],
            "method_b": ["b", "c", "c"],
            "diff": [2.0, 0.5, -0.3],
            "p_holm": [0.001, 0.2, 0.04],
        }
    )
    svg = significance_matrix(pairs, ["a", "b", "c"], "Which is better")
    cells = re.findall(r'<rect x="[\d.]+" y="[\d.]+" width="64" height="64" fill="([^"]+)"', svg)
    assert len(cells) == 9
    colour = {(i, j): cells[3 * i + j] for i in range(3) for j in range(3)}
    assert colour[0, 1] == SIGNIFICANCE_COLOURS[True, True] and colour[1, 0] == SIGNIFICANCE_COLOURS[False, True]
    assert colour[0, 2] == SIGNIFICANCE_COLOURS[True, False] and colour[2, 0] == SIGNIFICANCE_COLOURS[False, False]
    assert colour[1, 2] == SIGNIFICANCE_COLOURS[False, True] and colour[2, 1] == SIGNIFICANCE_COLOURS[True, True]
    assert "p&lt;0.001" not in svg and "p<0.001" not in svg and "p=0.001" in svg and "p=0.04" in svg


def test_the_heatmap_and_the_scores_chart_show_every_value() -> None:
    by_image = pd.DataFrame(
        {"image": ["x", "x", "y"], "method": ["m<1>", "n", "m<1>"], "mos": [1.0, 5.0, 3.25]}
    )  # y × n was never rated: an empty cell
    svg = heatmap(by_image, "MOS")
    assert svg.count("<rect") == 4 and "m&lt;1&gt;" in svg and "3.25" in svg and "5.00" in svg
    scores = pd.DataFrame(
        {"method": ["a", "b"], "score": [-0.6, 0.6], "ci95_low": [-1.0, 0.1], "ci95_high": [-0.2, 1.3],
         "n_comparisons": [10, 10]}
    )  # fmt: skip
    chart = scores_chart(scores, "Scores")
    assert chart.count("<circle") == 2 and chart.count("<path") == 2 and "+1.5" in chart and "-1.0" in chart


def test_the_results_view_of_a_pair_comparison(store: Store, compared: StudySummary) -> None:
    view = results_show(store, "pw", "pw", "pc-export", exclude_flagged=False)
    assert "Pair comparison" in view.summary and "20 choices" in view.summary
    assert list(view.tables)[:2] == [PC_SCORES, PC_WINS] and len(view.tables) == 5
    assert view.chart.startswith("<svg") and view.chart.count("<circle") == 3
    assert "Which method is preferred" in view.figures


def test_a_pair_is_two_stored_versions(store: Store, compared: StudySummary) -> None:
    state = start_rater(store, compared.public_id)
    version_a, version_b = (store.png_path(compared.public_id, stimulus) for stimulus in state.pair)
    assert version_a != version_b and version_a.exists() and version_b.exists()


def test_tables_name_methods_by_title_and_keep_tiny_p_values() -> None:
    wilcoxon = pd.DataFrame({
        "method_a": ["edsr_srgan", "reference"], "method_b": ["bicubic", "mine"], "mean_diff": [0.123456, -2.0],
        "p_value": [1.0712345e-15, 0.0123456789], "p_holm": [2.14e-15, 0.0246913578],
    })  # fmt: skip
    shown = rounded(wilcoxon)
    assert shown["method_a"].tolist() == ["EDSR-SRGAN", "Original (reference)"]
    assert shown["method_b"].tolist() == ["Bicubic", "mine"]  # a user's model or folder keeps its name
    assert shown["mean_diff"].tolist() == [0.123, -2.0] and shown["p_value"].tolist() == [1.07e-15, 0.0123]
    page = html_table(shown)
    assert "1.07e-15" in page and "0.0123" in page and "edsr_srgan" not in page and "0.0123456789" not in page
