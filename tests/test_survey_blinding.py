"""Blinding (nothing a rater receives names a method) and access (admin handlers need the password)."""

import dataclasses
import os
import re
from collections.abc import Iterator
from pathlib import Path

import gradio as gr
import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from sr_app.images import load_rgb
from sr_app.methods import REGISTRY
from survey.db import NEAREST, REFERENCE, Store
from survey.studies import StudySummary, create_study
from survey.ui.rate import SurveyPage, build_survey_tab, survey_open, survey_rate, survey_start
from survey.ui.results import WRONG_PASSWORD, build_results_tab, results_export, results_show, results_studies
from tests.survey_fixtures import image_folder, png_chunks, tmp_store

PASSWORD = "correct horse"
STUDY_NAME = "private-edsr-vs-bicubic"
#: Words that would tell a rater which condition they see, or which study this is.
FORBIDDEN = re.compile("|".join([*REGISTRY, NEAREST, REFERENCE, "anchor", STUDY_NAME]), re.IGNORECASE)
#: A stored stimulus or calibration PNG: named by a 128-bit random token, nothing else.
OPAQUE_PNG = re.compile(r"[A-Za-z0-9_-]{22}\.png")


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    return tmp_store(tmp_path)


@pytest.fixture()
def study(store: Store, tmp_path: Path, tiny_weights_dir: Path) -> StudySummary:
    folder = image_folder(tmp_path / "hr", n_images=2)
    return create_study(
        store, STUDY_NAME, folder, ["bicubic", "edsr"], reference=True, anchors=True, weights_dir=tiny_weights_dir
    )


def strings_in(page: SurveyPage) -> Iterator[str]:
    for field in dataclasses.fields(page):
        value = getattr(page, field.name)
        if isinstance(value, Path):  # a stored PNG: its name must be opaque too
            yield value.name
        else:
            yield str(value)
    yield page.progress_html


def test_rater_handlers_never_name_a_method(store: Store, study: StudySummary) -> None:
    pages = [survey_open(store, study.public_id, "")]
    assert pages[0].view == "welcome" and pages[0].best_example is not None
    pages.append(survey_start(store, study.public_id, "", "phone"))
    token = pages[-1].token
    pages.append(survey_open(store, study.public_id, token))  # a reload
    while pages[-1].view == "rate":
        pages.append(survey_rate(store, study.public_id, token, pages[-1].stimulus, 3))
    assert pages[-1].view == "done" and len(pages) == 3 + 8
    shapes = set()
    for page in pages:
        for text in strings_in(page):
            assert not FORBIDDEN.search(text), text
        if page.image is not None:
            shapes.add(load_rgb(page.image).shape)
    assert shapes == {(32, 36, 3)}  # every version of every image has the same size here
    examples = (load_rgb(pages[0].best_example), load_rgb(pages[0].worst_example))
    assert examples[0].shape == examples[1].shape != (32, 36, 3)  # calibration uses an image outside the study


def test_invalid_links_and_closed_studies_get_a_page_not_a_crash(store: Store, study: StudySummary) -> None:
    assert survey_open(store, "", "").view == "invalid"
    assert survey_open(store, "../../etc", "").view == "invalid"
    with pytest.raises(gr.Error, match="not valid"):
        survey_start(store, "nope", "", "")


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
def test_through_the_gradio_api_raters_learn_nothing_and_admins_need_the_password(
    store: Store, study: StudySummary, tmp_path: Path
) -> None:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    with gr.Blocks() as demo:
        with gr.Tab("Survey"):
            build_survey_tab(store)
        with gr.Tab("Results"):
            build_results_tab(store, PASSWORD)
    demo.queue(default_concurrency_limit=1)
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True)
    try:
        config = httpx.get(f"{url}config").text
        assert not FORBIDDEN.search(config) and study.public_id not in config
        client = Client(url, verbose=False, download_files=str(tmp_path / "downloads"))
        endpoints = set(client.view_api(return_format="dict", print_info=False)["named_endpoints"])
        assert {"/survey_open", "/survey_start", "/survey_rate", "/results_show", "/results_export"} <= endpoints

        responses = [client.predict(study.public_id, "", api_name="/survey_open")]
        responses.append(client.predict(study.public_id, "", "", api_name="/survey_start"))
        token = responses[-1][0]
        while responses[-1][1]:  # the stimulus id; empty on the end page
            responses.append(client.predict(study.public_id, token, responses[-1][1], 4, api_name="/survey_rate"))
        assert len(responses) == 2 + 8
        downloads = [Path(v) for r in responses for v in r if isinstance(v, str) and v.startswith(str(tmp_path))]
        assert len(set(downloads)) == 2 + 8  # two calibration examples and eight stimuli, all different files
        for response in responses:
            assert not FORBIDDEN.search(repr(response)), response
        for path in downloads:
            assert OPAQUE_PNG.fullmatch(path.name) and not FORBIDDEN.search(str(path))
            assert set(png_chunks(path.read_bytes())) == {b"IHDR", b"IDAT", b"IEND"}

        for endpoint, args in [
            ("/results_studies", ("",)),
            ("/results_show", ("wrong", STUDY_NAME, False)),
            ("/results_export", ("", STUDY_NAME, False)),
        ]:
            with pytest.raises(AppError, match=WRONG_PASSWORD):
                client.predict(*args, api_name=endpoint)
        csv_files = client.predict(PASSWORD, STUDY_NAME, False, api_name="/results_export")
        assert sorted(Path(f).name for f in csv_files)[0] == "dmos.csv"
    finally:
        demo.close()
