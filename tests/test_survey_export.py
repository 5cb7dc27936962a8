"""Export to CSV (module and command line), the Results view, the chart and the admin password."""

import random
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

from conftest import error_line, exit_status
from survey.__main__ import main
from survey.answers import submit_rating
from survey.charts import mos_chart
from survey.creation import create_study
from survey.db import Stimulus, Store
from survey.export import (
    CODES_COLUMNS,
    CSV_FILES,
    RATERS_COLUMNS,
    RATINGS_COLUMNS,
    REPORT_FILE,
    export_study,
    load_ratings,
    write_csv,
)
from survey.private_files import stored_secret
from survey.raters import start_rater
from survey.report import BY_METHOD
from survey.stats import BOOT_COLUMNS, MOS_COLUMNS, WILCOXON_COLUMNS, mos
from survey.studies import StudySummary
from survey.ui.results import ADMIN_PASSWORD_ENV, ADMIN_PASSWORD_FILE, admin_password, results_show
from tests.survey_fixtures import image_folder, set_response_times

#: The score the simulated raters mean to give each condition.
BASE_SCORE = {"nearest": 1, "bicubic": 3, "reference": 5}
DOCUMENTED_COLUMNS = {
    "ratings.csv": RATINGS_COLUMNS,
    "mos_by_method.csv": ["method", *MOS_COLUMNS, *BOOT_COLUMNS],
    "mos_by_image.csv": ["image", "method", *MOS_COLUMNS],
    "dmos.csv": ["method", "dmos", *MOS_COLUMNS[1:]],
    "wilcoxon.csv": WILCOXON_COLUMNS,
    "raters.csv": RATERS_COLUMNS,
    "accepted_codes.csv": CODES_COLUMNS,
}


@pytest.fixture()
def rated(store: Store, tmp_path: Path) -> StudySummary:
    """2 images × (bicubic, reference, nearest) = 6 stimuli; 5 raters who score each condition about the same, taking
    a person's time, the last one unfinished."""
    folder = image_folder(tmp_path / "hr", n_images=2)
    summary = create_study(store, "export", folder, ["bicubic"], reference=True, anchors=True)
    with store.session() as session:
        condition = {s.public_id: s.condition.name for s in session.scalars(select(Stimulus))}
    rng = np.random.default_rng(0)
    for rater in range(5):
        state = start_rater(store, summary.public_id, f"rater {rater}, résumé", rng=random.Random(rater))
        for _ in range(6 if rater < 4 else 2):
            score = np.clip(BASE_SCORE[condition[state.stimulus or ""]] + rng.integers(-1, 2), 1, 5)
            state = submit_rating(store, summary.public_id, state.token, state.stimulus or "", int(score))
    set_response_times(store)
    return summary


def test_export_round_trips_through_pandas_with_the_documented_columns(
    store: Store, rated: StudySummary, tmp_path: Path
) -> None:
    paths = export_study(store, "export", tmp_path / "out")
    assert [p.name for p in paths] == [*CSV_FILES, REPORT_FILE]
    tables = {p.name: pd.read_csv(p) for p in paths[:-1]}
    for name, columns in DOCUMENTED_COLUMNS.items():
        assert list(tables[name].columns) == columns, name
    ratings = tables["ratings.csv"]
    assert len(ratings) == 4 * 6 + 2 and set(ratings["score"]) <= {1, 2, 3, 4, 5}
    assert set(ratings["method"]) == {"bicubic", "reference", "nearest"}
    by_method = tables["mos_by_method.csv"]
    raters = tables["raters.csv"]
    accepted = load_ratings(store, "export").query("rater in @raters.rater[@raters.status == 'accepted']")
    assert accepted["rater"].nunique() == 4  # by default, of the accepted raters: the unfinished one is left out
    pd.testing.assert_frame_equal(by_method[["method", *MOS_COLUMNS]], mos(accepted), check_dtype=False)
    assert ((by_method["ci95_low_boot"] <= by_method["mos"]) & (by_method["mos"] <= by_method["ci95_high_boot"])).all()
    assert pd.to_datetime(ratings["rated_at"]).notna().all()
    assert len(raters) == 5 and raters["finished_at"].notna().sum() == 4
    assert raters["reasons"].iloc[4] == "incomplete: 2 of 6 answered"
    assert (raters["flagged"] == (raters["status"] == "rejected")).all()
    assert raters["self_report"].iloc[0] == "rater 0, résumé"
    assert raters["flagged"].dtype == bool and len(tables["wilcoxon.csv"]) == 3 and len(tables["dmos.csv"]) == 2


def test_export_without_flagged_raters_leaves_them_out_of_the_mos(
    store: Store, rated: StudySummary, tmp_path: Path
) -> None:
    raters = pd.read_csv(export_study(store, "export", tmp_path / "all", exclude_flagged=False)[-2])
    screened = pd.read_csv(export_study(store, "export", tmp_path / "screened")[1])
    kept = raters.loc[~raters["flagged"], "n_ratings"].sum()
    assert screened["n_ratings"].sum() == kept


def test_csv_text_cells_that_start_a_formula_are_quoted_and_numbers_are_not(tmp_path: Path) -> None:
    text = ["=1+1", "+a", "-b", "@c", "\tx", "\ry", "a=b", "", None]
    table = pd.DataFrame({"text": text, "number": [-1.5, 0, 2, -3, 4, 5, 6, 7, 8], "negative": -1})
    write_csv(table, tmp_path / "table.csv")
    back = pd.read_csv(tmp_path / "table.csv", keep_default_na=False)
    assert back["text"].tolist() == ["'=1+1", "'+a", "'-b", "'@c", "'\tx", "'\ry", "a=b", "", ""]
    assert back["number"].tolist() == table["number"].tolist() and (back["negative"] == -1).all()
    assert table["text"].iloc[0] == "=1+1"  # the table itself is left as it was


def test_the_command_line_creates_lists_closes_and_exports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    images = str(image_folder(tmp_path / "hr"))
    create = [*data, "create", "--name", "cli", "--images", images, "--methods", "bicubic", "--anchors"]
    assert exit_status(main, create) == 0
    assert "/rate/" in capsys.readouterr().out
    assert exit_status(main, [*data, "list"]) == 0
    assert "cli [open]" in capsys.readouterr().out
    assert exit_status(main, [*data, "close", "--study", "cli"]) == 0
    assert exit_status(main, [*data, "export", "--study", "cli", "--out", str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted([*CSV_FILES, REPORT_FILE])
    capsys.readouterr()
    missing = [*data, "create", "--name", "gan", "--images", images, "--methods", "edsr_srgan"]
    assert exit_status(main, [*missing, "--weights-dir", str(tmp_path)]) == 1
    assert "edsr_srgan_x4.safetensors" in error_line(capsys)
    assert exit_status(main, [*data, "export", "--study", "nope", "--out", str(tmp_path / "x")]) == 1
    assert "No study named 'nope'; known studies: cli" in error_line(capsys)


def test_results_view_shows_both_raters_sets_and_a_chart(store: Store, rated: StudySummary) -> None:
    view = results_show(store, "pw", "pw", "export", exclude_flagged=False)
    assert set(view.tables[BY_METHOD]["raters"]) == {"all", "accepted"}
    assert view.chart.startswith("<svg") and view.chart.count("<rect") == 3
    assert f"/rate/{rated.public_id}" in view.summary and "5 raters (4 finished)" in view.summary


def test_chart_escapes_names_and_draws_error_bars() -> None:
    table = pd.DataFrame(
        {"method": ["a<b", "c"], "mos": [2.0, 4.0], "std": 1.0, "n_ratings": 5, "n_raters": 5,
         "ci95_low": [1.5, np.nan], "ci95_high": [2.5, np.nan]}
    )  # fmt: skip
    svg = mos_chart(table, "MOS")
    assert "a&lt;b" in svg and svg.count("<path") == 1 and svg.count("<rect") == 2


def test_admin_password_comes_from_the_environment_or_is_generated_once(
    store: Store, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(ADMIN_PASSWORD_ENV, raising=False)
    generated = admin_password(store)
    assert generated in capsys.readouterr().out and len(generated) >= 16
    assert admin_password(store) == generated and capsys.readouterr().out == ""
    assert stat.S_IMODE((store.data_dir / ADMIN_PASSWORD_FILE).stat().st_mode) == 0o600
    monkeypatch.setenv(ADMIN_PASSWORD_ENV, "chosen")
    assert admin_password(store) == "chosen"


def test_secrets_are_created_once_and_private(tmp_path: Path) -> None:
    first, created = stored_secret(tmp_path / "dir" / "secret")
    again, created_again = stored_secret(tmp_path / "dir" / "secret")
    assert created and not created_again and first == again and len(first) >= 20
    assert stat.S_IMODE((tmp_path / "dir" / "secret").stat().st_mode) == 0o600
