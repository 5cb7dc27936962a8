"""A survey link posted in public, the results side (issue #23): what strangers type reaches the owner's spreadsheet as
text, the admin password cannot be found by trying, exports leave no folders behind, and bots that click through are
flagged and can be left out."""

import csv
import html
import os
import random
import re
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pandas as pd
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError
from limits import parse
from sqlalchemy import select, update

from sr_app.csv_files import FORMULA_PREFIXES
from survey.answers import submit_choice, submit_rating
from survey.creation import create_study
from survey.db import ACR, LEFT, PC, RIGHT, Rater, Stimulus, Store, Study
from survey.export import export_study
from survey.raters import start_rater
from survey.stats import MIN_MEDIAN_RESPONSE_MS
from survey.studies import StudySummary
from survey.ui.results import WRONG_PASSWORD, AdminLogin, build_results_tab, results_export
from tests.survey_fixtures import HUMAN_RESPONSE_MS, image_folder, set_response_times

PASSWORD = "owner"
HOSTILE_ID = '=HYPERLINK("http://x","y")'
#: What the first two raters write about themselves: a formula, and a formula holding markup.
HOSTILE_REPORTS = ["+cmd", "@<script>alert(1)</script>"]
#: What the careful raters give each condition: the ACR score, and in a pair the higher one wins.
SCORE = {"nearest": 1, "bicubic": 3, "reference": 5}
TOO_MANY = re.compile(r"Too many wrong passwords; try again in \d+ s\.")
BOT_MS = 300


def answered_study(store: Store, tmp_path: Path, protocol: str, response_ms: Sequence[int]) -> StudySummary:
    """A study (``protocol``) of 2 images × (bicubic, reference, nearest) answered in full by one careful rater per
    entry of ``response_ms`` (scores by :data:`SCORE`, the better condition chosen in a pair), taking that many
    milliseconds per answer. The first rater came from a crowd platform with id :data:`HOSTILE_ID`; the first two
    wrote the self-reports :data:`HOSTILE_REPORTS`."""
    folder = image_folder(tmp_path / protocol, n_images=2)
    study = create_study(store, protocol, folder, ["bicubic"], reference=True, anchors=True, protocol=protocol)
    with store.session() as session:
        condition = {s.public_id: s.condition.name for s in session.scalars(select(Stimulus))}
    for rater, ms in enumerate(response_ms):
        state = start_rater(
            store, study.public_id, self_report=[*HOSTILE_REPORTS, ""][min(rater, 2)], rng=random.Random(rater),
            external_id=HOSTILE_ID if rater == 0 else "",
        )  # fmt: skip
        while not state.finished:
            if protocol == PC:
                a, b = (condition[version] for version in state.pair or ())
                answer: object = LEFT if SCORE[a] > SCORE[b] else RIGHT
                state = submit_choice(store, study.public_id, state.token, state.stimulus or "", answer)
            else:
                answer = SCORE[condition[state.stimulus or ""]]
                state = submit_rating(store, study.public_id, state.token, state.stimulus or "", answer)
        with store.session() as session:
            set_response_times(store, ms, [session.scalar(select(Rater.id).where(Rater.token == state.token))])
    return study


def client(host: str) -> gr.Request:
    """What Gradio hands a handler for a request from ``host``."""
    return gr.Request(client=SimpleNamespace(host=host))


def test_formulas_typed_by_raters_reach_every_csv_as_text_and_numbers_stay_numbers(
    store: Store, tmp_path: Path
) -> None:
    for protocol in (ACR, PC):
        answered_study(store, tmp_path, protocol, [HUMAN_RESPONSE_MS] * 3)
        paths = export_study(store, protocol, tmp_path / f"out-{protocol}")
        for path in paths[:-1]:
            with path.open(newline="", encoding="utf-8") as file:
                for cell in (cell for row in csv.reader(file) for cell in row):
                    formula = cell.startswith(FORMULA_PREFIXES) and not re.fullmatch(r"-\d+(\.\d+)?(e-?\d+)?", cell)
                    assert not formula, (path.name, cell)
        raters = pd.read_csv(tmp_path / f"out-{protocol}" / "raters.csv", keep_default_na=False)
        assert raters["external_id"].tolist() == [f"'{HOSTILE_ID}", "", ""]
        assert raters["self_report"].tolist() == [*(f"'{text}" for text in HOSTILE_REPORTS), ""]
        assert raters["median_response_ms"].tolist() == [HUMAN_RESPONSE_MS] * 3
        report = paths[-1].read_text(encoding="utf-8")  # the report shows what they typed as it is, markup escaped
        assert f"<td>{HOSTILE_ID}</td>" in report and f"<td>{html.escape(HOSTILE_REPORTS[1])}</td>" in report
        assert "<script>" not in report
    scores = pd.read_csv(tmp_path / f"out-{PC}" / "pc_scores.csv")
    assert scores["score"].dtype == float and scores["score"].min() < 0  # negative numbers are written as numbers
    wilcoxon = pd.read_csv(tmp_path / f"out-{ACR}" / "wilcoxon.csv")
    assert wilcoxon["mean_diff"].dtype == float and wilcoxon["mean_diff"].min() < 0


def test_twenty_wrong_passwords_lock_out_even_the_right_one(store: Store) -> None:
    login = AdminLogin(PASSWORD)
    wrong = []
    for _ in range(20):
        with pytest.raises(gr.Error) as refused:
            login.require("guess", client("203.0.113.5"))
        wrong.append(refused.value.message)
    assert wrong[:5] == [WRONG_PASSWORD] * 5 and all(TOO_MANY.fullmatch(text) for text in wrong[5:]), wrong
    with pytest.raises(gr.Error, match=TOO_MANY):
        login.require(PASSWORD, client("203.0.113.5"))
    login.require(PASSWORD, client("198.51.100.7"))  # another client is still let in
    for host in range(3):  # 5 + 3 × 5 = 20 wrong passwords from four clients lock everyone out
        for _ in range(5):
            with pytest.raises(gr.Error, match=WRONG_PASSWORD):
                login.require("guess", client(f"192.0.2.{host}"))
    with pytest.raises(gr.Error, match=TOO_MANY):
        login.require(PASSWORD, client("198.51.100.7"))


def test_the_lock_lifts_when_the_window_passes() -> None:
    login = AdminLogin(PASSWORD, client_limit=parse("2/second"), global_limit=parse("10/second"))
    for _ in range(2):
        with pytest.raises(gr.Error, match=WRONG_PASSWORD):
            login.require("guess", client("203.0.113.5"))
    with pytest.raises(gr.Error, match=r"try again in 1 s"):
        login.require(PASSWORD, client("203.0.113.5"))
    time.sleep(1.1)
    login.require(PASSWORD, client("203.0.113.5"))


@pytest.mark.slow
def test_the_results_tab_locks_out_a_client_guessing_over_http(store: Store, tmp_path: Path) -> None:
    """The limit keys on the address Gradio saw the request come from."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    with gr.Blocks() as demo:
        build_results_tab(store, PASSWORD)
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True)
    try:
        api = Client(url, verbose=False, download_files=str(tmp_path / "downloads"))
        for attempt in range(20):
            with pytest.raises(AppError, match=WRONG_PASSWORD if attempt < 5 else TOO_MANY):
                api.predict("guess", api_name="/results_studies")
        with pytest.raises(AppError, match=TOO_MANY):
            api.predict(PASSWORD, "", False, api_name="/results_export")
    finally:
        demo.close()


def test_exports_leave_no_temporary_folder_behind(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    answered_study(store, tmp_path, ACR, [HUMAN_RESPONSE_MS])
    temp, cache = tmp_path / "tmp", tmp_path / "gradio-cache"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(cache))
    exports = [results_export(store, PASSWORD, PASSWORD, ACR, False) for _ in range(3)]
    assert list(temp.iterdir()) == []  # the old export left a folder per export here
    files = [Path(file) for export in exports for file in export]  # copies in Gradio's cache, which serves them
    assert all(file.is_relative_to(cache) and file.stat().st_size > 0 for file in files)
    assert len(pd.read_csv(next(file for file in files if file.name == "ratings.csv"))) == 6


@pytest.mark.slow
@pytest.mark.parametrize("protocol", [ACR, PC])
def test_a_bot_answering_in_300_ms_is_flagged_too_fast_and_left_out_on_request(
    store: Store, tmp_path: Path, protocol: str
) -> None:
    answered_study(store, tmp_path, protocol, [HUMAN_RESPONSE_MS] * 3 + [BOT_MS])
    raters = pd.read_csv(export_study(store, protocol, tmp_path / "all")[-2], keep_default_na=False)
    assert raters["too_fast"].tolist() == raters["flagged"].tolist() == [False, False, False, True]
    assert raters["flag_reason"].tolist() == ["", "", "", f"too fast: median {BOT_MS} ms < {MIN_MEDIAN_RESPONSE_MS} ms"]
    screened = export_study(store, protocol, tmp_path / "screened", exclude_flagged=True)
    if protocol == PC:
        kept = pd.read_csv(screened[1])["n_comparisons"].sum() / 2  # each choice compares two methods
        assert kept == 3 * 6
    else:
        assert (pd.read_csv(screened[1])["n_raters"] == 3).all()
    assert "Exclusions: 1 rater (4) rejected; left out of the analysis" in screened[-1].read_text(encoding="utf-8")
    lenient = export_study(store, protocol, tmp_path / "lenient", min_median_ms=BOT_MS)
    assert not pd.read_csv(lenient[-2])["flagged"].any()  # the threshold is a parameter


def test_a_rater_answering_as_soon_as_the_minimum_viewing_time_allows_is_flagged(store: Store, tmp_path: Path) -> None:
    """A study that refuses answers sooner than 1 s (``create --min-view-ms 1000``) cannot see a median under 1 s: the
    too-fast threshold moves with it, to 1 s beyond the minimum."""
    answered_study(store, tmp_path, ACR, [HUMAN_RESPONSE_MS, 1100])
    with store.session() as session, session.begin():
        session.execute(update(Study).values(min_view_ms=1000))  # as the command line stores it
    raters = pd.read_csv(export_study(store, ACR, tmp_path / "out")[-2], keep_default_na=False)
    assert raters["flag_reason"].tolist() == ["", "too fast: median 1100 ms < 2000 ms"]
