"""Blinding (nothing a rater receives names a method) and access (admin handlers need the password)."""

import json
import os
import re
from pathlib import Path

import gradio as gr
import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from sr_app.images import load_rgb
from sr_app.methods import REGISTRY
from survey.creation import create_study
from survey.db import NEAREST, REFERENCE, Store
from survey.errors import SurveyError
from survey.studies import StudySummary
from survey.ui.rate import BlocksWithRaterPage, RaterPage, rater_answer, rater_open, rater_start
from survey.ui.rater_requests import RateLimits
from survey.ui.results import WRONG_PASSWORD, build_results_tab, results_export, results_show, results_studies
from tests.survey_fixtures import blank_random_ids, image_folder, png_chunks

PASSWORD = "correct horse"
STUDY_NAME = "private-edsr-vs-bicubic"
#: Words that would tell a rater which condition they see, or which study this is.
FORBIDDEN = re.compile("|".join([*REGISTRY, NEAREST, REFERENCE, "anchor", STUDY_NAME]), re.IGNORECASE)
#: A stored stimulus or calibration PNG: named by a 128-bit random token, nothing else.
OPAQUE_PNG = re.compile(r"[A-Za-z0-9_-]{22}\.png")


@pytest.fixture()
def study(store: Store, tmp_path: Path, tiny_weights_dir: Path) -> StudySummary:
    folder = image_folder(tmp_path / "hr", n_images=2)
    return create_study(
        store, STUDY_NAME, folder, ["bicubic", "edsr"], reference=True, anchors=True, weights_dir=tiny_weights_dir
    )


def shown_files(store: Store, study: StudySummary, page: RaterPage) -> list[Path]:
    """The stored PNGs a page shows (by their opaque ids)."""
    return [store.png_path(study.public_id, name) for name in [*page.images, *(page.examples or ())]]


def test_rater_handlers_never_name_a_method(store: Store, study: StudySummary) -> None:
    pages = [rater_open(store, study.public_id)]
    assert pages[0].view == "welcome" and pages[0].examples is not None
    pages.append(rater_start(store, study.public_id, self_report="phone"))
    token = pages[-1].token
    pages.append(rater_open(store, study.public_id, token))  # a reload
    while pages[-1].view == "rate":
        pages.append(rater_answer(store, study.public_id, token, pages[-1].item, 3))
    assert pages[-1].view == "done" and len(pages) == 3 + 8
    for page in pages:
        assert not FORBIDDEN.search(blank_random_ids(json.dumps(page.__dict__))), page
        assert all(OPAQUE_PNG.fullmatch(path.name) for path in shown_files(store, study, page))
    shapes = {load_rgb(path).shape for page in pages[1:] for path in shown_files(store, study, page)}
    assert shapes == {(32, 36, 3)}  # every version of every image has the same size here
    examples = [load_rgb(path) for path in shown_files(store, study, pages[0])]
    assert examples[0].shape == examples[1].shape != (32, 36, 3)  # calibration uses an image outside the study


def test_invalid_links_and_closed_studies_get_a_page_not_a_crash(store: Store, study: StudySummary) -> None:
    assert rater_open(store, "").view == "invalid"
    assert rater_open(store, "../../etc").view == "invalid"
    with pytest.raises(SurveyError, match="not valid"):
        rater_start(store, "nope")


def test_admin_handlers_refuse_without_the_password(store: Store, study: StudySummary) -> None:
    for password in ("", "wrong", PASSWORD + " "):
        with pytest.raises(gr.Error, match=WRONG_PASSWORD):
            results_studies(store, PASSWORD, password)
        with pytest.raises(gr.Error, match=WRONG_PASSWORD):
            results_show(store, PASSWORD, password, STUDY_NAME, False)
        with pytest.raises(gr.Error, match=WRONG_PASSWORD):
            results_export(store, PASSWORD, password, STUDY_NAME, False)
    assert results_studies(store, PASSWORD, PASSWORD) == [STUDY_NAME]


def test_every_results_tab_event_checks_the_password(store: Store, study: StudySummary) -> None:
    """Private events (Enter in the password box, the checkbox) are callable over HTTP by index too."""
    with gr.Blocks() as demo:
        build_results_tab(store, PASSWORD)
    handlers = list(demo.fns.values())
    assert len(handlers) == 5 and {h.api_visibility for h in handlers} == {"public", "private"}
    for handler in handlers:
        args = ("wrong", STUDY_NAME, False)[: len(handler.inputs)]
        with pytest.raises(gr.Error, match=WRONG_PASSWORD):
            handler.fn(*args)


@pytest.mark.slow
def test_through_the_app_raters_learn_nothing_and_admins_need_the_password(
    store: Store, study: StudySummary, tmp_path: Path
) -> None:
    """The rater page mounted on a Gradio app with the Results tab, as in ``app.py``."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    with BlocksWithRaterPage(store, RateLimits(answer=None)) as demo, gr.Tab("Results"):
        build_results_tab(store, PASSWORD)
    demo.queue(default_concurrency_limit=1)
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True)
    try:
        config = httpx.get(f"{url}config").text
        assert not FORBIDDEN.search(blank_random_ids(config)) and study.public_id not in config
        client = Client(url, verbose=False, download_files=str(tmp_path / "downloads"))
        endpoints = set(client.view_api(return_format="dict", print_info=False)["named_endpoints"])
        assert {"/results_show", "/results_export"} <= endpoints and not any("survey" in e for e in endpoints)

        rater = httpx.Client(base_url=url, follow_redirects=True)
        page = rater.get(f"/?study={study.public_id}")  # an old link
        assert page.url.path == f"/rate/{study.public_id}" and not FORBIDDEN.search(blank_random_ids(page.text))
        pages = [rater.post(f"{page.url.path}/open", json={}).json()]
        pages.append(rater.post(f"{page.url.path}/start", json={}).json())
        while pages[-1]["view"] == "rate":
            answer = {"token": pages[-1]["token"], "item": pages[-1]["item"], "answer": 4}
            pages.append(rater.post(f"{page.url.path}/answer", json=answer).json())
        assert len(pages) == 2 + 8 and pages[-1]["view"] == "done"
        files = {name for p in pages for name in [*p["images"], *(p["examples"] or ())]}
        assert len(files) == 2 + 8  # two calibration examples and eight stimuli, all different files
        for response in pages:
            assert not FORBIDDEN.search(blank_random_ids(json.dumps(response))), response
        for name in files:
            png = rater.get(f"{page.url.path}/{name}.png").content
            assert set(png_chunks(png)) == {b"IHDR", b"IDAT", b"IEND"}

        for endpoint, args in [
            ("/results_studies", ("",)),
            ("/results_show", ("wrong", STUDY_NAME, False)),
            ("/results_export", ("", STUDY_NAME, False)),
        ]:
            with pytest.raises(AppError, match=WRONG_PASSWORD):
                client.predict(*args, api_name=endpoint)
        csv_files = client.predict(PASSWORD, STUDY_NAME, False, api_name="/results_export")
        assert "dmos.csv" in {Path(f).name for f in csv_files}
    finally:
        demo.close()
