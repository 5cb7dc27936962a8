"""Results for the study's owner: what was broken or misleading, each fixed — the Results tab over Gradio's plain REST
API, the server log on a wrong password, every rater flagged, intervals past the scale, DMOS above 5, "1 raters"."""

import json
import os
import random
from collections.abc import Iterator
from pathlib import Path

import gradio as gr
import httpx
import pandas as pd
import pytest

from conftest import error_line, exit_status
from survey.__main__ import main
from survey.answers import submit_rating
from survey.creation import create_study
from survey.db import MAX_SCORE, MIN_SCORE, REFERENCE, Store
from survey.errors import SurveyError
from survey.export import export_study
from survey.raters import start_rater
from survey.report import DMOS
from survey.stats import DMOS_BOUNDS, dmos, mos
from survey.store import DATABASE_URL_ENV
from survey.studies import StudySummary
from survey.ui.results import build_results_tab, results_show
from tests.survey_fixtures import image_folder

PASSWORD = "owner"


def rated(store: Store, tmp_path: Path, scores: list[int]) -> StudySummary:
    """A study of 2 images × (bicubic, reference), one rater per entry of ``scores``, each giving that score to
    everything: constant scores, so every rater is flagged (no correlation with the MOS)."""
    study = create_study(store, "flat", image_folder(tmp_path / "hr", n_images=2), ["bicubic"], reference=True)
    for rater, score in enumerate(scores):
        state = start_rater(store, study.public_id, rng=random.Random(rater))
        while not state.finished:
            state = submit_rating(store, study.public_id, state.token, state.stimulus or "", score)
    return study


def call(url: str, api_name: str, *data: object) -> tuple[str, object]:
    """Gradio's plain REST API: ``POST /gradio_api/call/<api>``, then its server-sent events; (last event, data)."""
    with httpx.Client(base_url=url, timeout=60) as client:
        event_id = client.post(f"gradio_api/call/{api_name}", json={"data": list(data)}).json()["event_id"]
        event, payload = "", None
        with client.stream("GET", f"gradio_api/call/{api_name}/{event_id}") as stream:
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    event = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    payload = json.loads(line.removeprefix("data: "))
        return event, payload


@pytest.fixture()
def results_url(store: Store) -> Iterator[str]:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    with gr.Blocks() as demo:
        build_results_tab(store, PASSWORD)
    demo.queue(default_concurrency_limit=1)
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True)
    try:
        yield url
    finally:
        demo.close()


@pytest.mark.slow
def test_the_results_over_the_rest_api_and_a_wrong_password_in_the_log(
    store: Store, tmp_path: Path, results_url: str, capfd: pytest.CaptureFixture[str]
) -> None:
    rated(store, tmp_path, [2, 4])
    event, data = call(results_url, "results_show", PASSWORD, "flat", False)
    assert event == "complete", data  # the raters table's times used to cut the connection (Timestamp in JSON)
    raters = next(table["value"] for table in data[3:] if "started_at" in table["value"]["headers"])
    assert len(raters["data"]) == 2 and all(isinstance(row[1], str) for row in raters["data"])  # times as text
    capfd.readouterr()
    event, data = call(results_url, "results_show", "guess", "flat", False)
    assert event == "error" and "Wrong admin password" in json.dumps(data)
    log = capfd.readouterr()
    assert "Traceback" not in log.out + log.err  # a wrong password is the user's error, not the server's


def test_with_every_rater_flagged_leaving_them_out_says_so_instead_of_showing_nothing(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rated(store, tmp_path, [3, 3])
    view = results_show(store, PASSWORD, PASSWORD, "flat", exclude_flagged=True)
    assert "Every rater who gave a score is flagged" in view.summary and "Untick" in view.summary
    assert "Every rater" not in results_show(store, PASSWORD, PASSWORD, "flat", exclude_flagged=False).summary
    with pytest.raises(SurveyError, match="Every rater of flat who gave a score is rejected"):
        export_study(store, "flat", tmp_path / "out", exclude_flagged=True)
    monkeypatch.setenv(DATABASE_URL_ENV, store.engine.url.render_as_string(hide_password=False))
    args = ["--data-dir", str(store.data_dir), "export", "--study", "flat", "--out", str(tmp_path / "cli")]
    assert exit_status(main, args) == 1
    assert "Export with --all-raters" in error_line(capsys) and not (tmp_path / "cli").exists()
    assert exit_status(main, [*args, "--all-raters"]) == 0 and len(pd.read_csv(tmp_path / "cli" / "ratings.csv")) == 8


def test_intervals_never_reach_past_the_scale() -> None:
    two = pd.DataFrame({"rater": [1, 2], "image": ["a", "a"], "method": ["m", "m"], "score": [1, 5]})
    (row,) = mos(two).itertuples()
    assert (row.mos, row.ci95_low, row.ci95_high) == (3, MIN_SCORE, MAX_SCORE)  # not −22.4 … 28.4
    ratings = pd.DataFrame(
        {"rater": [1, 1, 2, 2], "image": ["a"] * 4, "method": ["m", REFERENCE] * 2, "score": [5, 1, 5, 2]}
    )
    (row,) = dmos(ratings).itertuples()
    assert row.dmos == 8.5 and row.ci95_high == DMOS_BOUNDS[1]  # t(0.975, 1) = 12.7062, SE = 0.5
    assert row.ci95_low == pytest.approx(8.5 - 12.7062 * 0.5, abs=1e-4)
    assert DMOS_BOUNDS == (1, 9)


def test_the_dmos_table_says_what_above_5_means() -> None:
    assert "5 = as good as the original" in DMOS and "above 5 = scored better than the original" in DMOS


def test_one_rater_is_not_1_raters(store: Store, tmp_path: Path) -> None:
    rated(store, tmp_path, [4])
    summary = results_show(store, PASSWORD, PASSWORD, "flat", exclude_flagged=False).summary
    assert "2 images × 2 conditions" in summary and "1 rater (1 finished); 4 ratings" in summary
    assert "1 raters" not in summary
