"""The rater page over HTTP (no browser): a rater-only page, the JSON flow of ACR and PC studies, and no side channel
that tells the versions of one image apart (byte sizes, caching headers, ids, server paths). Without rate limits or a
minimum viewing time: ``test_public_survey.py`` checks those, and what a hostile client may try."""

import json
import re
from collections import defaultdict
from pathlib import Path

import pandas as pd
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from sr_app.methods import REGISTRY
from survey.creation import create_study
from survey.db import NEAREST, PC, REFERENCE, SIDE_BY_SIDE, Rater, SourceImage, Stimulus, Store, Study
from survey.export import export_study
from survey.studies import StudySummary
from survey.ui.rate import PAGE_HTML, app_kwargs
from survey.ui.rater_requests import RateLimits
from tests.survey_fixtures import blank_random_ids, image_folder, png_chunks

CODE = "C0MPLETE-7Q"
#: Words that would tell a rater which condition they see, or that they are in a lab's app.
FORBIDDEN = re.compile("|".join([*REGISTRY, NEAREST, REFERENCE, "anchor", "gradio", "super-resolution", "results"]),
                       re.IGNORECASE)  # fmt: skip
OPAQUE = re.compile(r"[A-Za-z0-9_-]{22}")
PHONE = {"viewport_width": 390, "viewport_height": 844, "device_pixel_ratio": 3.0, "scale": 1.0, "display_ms": 2150}
NO_LIMITS = RateLimits(open=None, start=None, answer=None)


@pytest.fixture()
def client(store: Store) -> TestClient:
    return TestClient(FastAPI(**app_kwargs(store, NO_LIMITS)))


@pytest.fixture()
def study(store: Store, tmp_path: Path) -> StudySummary:
    """3 images of 32×36 px × (bicubic, reference, nearest): 9 stimuli; a completion code."""
    folder = image_folder(tmp_path / "hr")
    return create_study(store, "secret-name", folder, ["bicubic"], reference=True, anchors=True, completion_code=CODE)


def conditions(store: Store) -> dict[str, tuple[str, str]]:
    """Stimulus id → (image, condition)."""
    with store.session() as session:
        return {s.public_id: (s.image.name, s.condition.name) for s in session.scalars(select(Stimulus))}


def take_study(client: TestClient, study_id: str, answer: object, external_id: str = "") -> list[dict]:
    """Every JSON page a rater gets from arriving to the end, answering ``answer`` with :data:`PHONE` viewing."""
    pages = [client.post(f"/rate/{study_id}/open", json={"external_id": external_id}).json()]
    pages.append(client.post(f"/rate/{study_id}/start", json={"external_id": external_id}).json())
    while pages[-1]["view"] in ("rate", "choose"):
        body = {"token": pages[-1]["token"], "item": pages[-1]["item"], "answer": answer, **PHONE}
        response = client.post(f"/rate/{study_id}/answer", json=body)
        assert response.status_code == 200, response.text
        pages.append(response.json())
    return pages


def test_the_page_is_for_raters_only(client: TestClient, study: StudySummary) -> None:
    response = client.get(f"/rate/{study.public_id}")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    html = response.text
    assert html == PAGE_HTML and not FORBIDDEN.search(html) and CODE not in html
    assert re.search(r"<title>Photo survey</title>", html) and 'name="viewport"' in html
    assert not re.search(r"<[a-z]+[^>]*\s(?:src|href)\s*=", html)  # nothing loaded from elsewhere, no link


def test_old_links_are_redirected_keeping_the_crowd_parameters(client: TestClient, study: StudySummary) -> None:
    old = client.get(f"/?study={study.public_id}&PROLIFIC_PID=5f3e&SESSION_ID=x", follow_redirects=False)
    assert old.status_code == 301
    assert old.headers["location"] == f"rate/{study.public_id}?PROLIFIC_PID=5f3e&SESSION_ID=x"
    assert client.get(f"/?study={study.public_id}").url.path == f"/rate/{study.public_id}"
    assert client.get("/", follow_redirects=False).status_code == 404  # the rest is left to the app (here none)


def test_an_acr_rater_takes_the_whole_study_and_gets_the_completion_code(
    client: TestClient, store: Store, study: StudySummary
) -> None:
    pages = take_study(client, study.public_id, 4, external_id="prolific-5f3e")
    welcome, first, *rated, end = pages
    assert welcome["view"] == "welcome" and welcome["scale"][0] == [5, "Excellent"] and welcome["token"] == ""
    assert all(OPAQUE.fullmatch(example) for example in welcome["examples"])
    assert [page["view"] for page in (first, *rated)] == ["rate"] * 9 and end["view"] == "done"
    assert [page["done"] for page in (first, *rated, end)] == list(range(10))
    assert end["completion_code"] == CODE and all(CODE not in json.dumps(page) for page in pages[:-1])
    for page in pages:
        assert not FORBIDDEN.search(blank_random_ids(json.dumps(page))) and "secret-name" not in json.dumps(page)
    shown = [conditions(store)[page["item"]] for page in (first, *rated)]
    assert len(set(shown)) == 9 and all(a[0] != b[0] for a, b in zip(shown, shown[1:], strict=False))
    again = client.post(f"/rate/{study.public_id}/open", json={"token": end["token"]}).json()
    assert again["view"] == "done" and again["completion_code"] == CODE  # a reload keeps the code on screen

    # ratings.csv holds every rater's answers; all raters are analysed, since this one answered at once and alike.
    ratings = pd.read_csv(export_study(store, study.name, store.data_dir / "out", exclude_flagged=False)[0])
    assert len(ratings) == 9 and set(ratings["score"]) == {4}
    for column, value in PHONE.items():
        assert (ratings[column] == value).all(), column
    raters = pd.read_csv(store.data_dir / "out" / "raters.csv")
    assert raters["external_id"].tolist() == ["prolific-5f3e"]


def test_a_pc_rater_chooses_through_the_page(client: TestClient, store: Store, tmp_path: Path) -> None:
    study = create_study(
        store, "pc", image_folder(tmp_path / "hr"), ["bicubic"], anchors=True, protocol=PC, allow_tie=True,
        presentation=SIDE_BY_SIDE,
    )  # fmt: skip
    pages = take_study(client, study.public_id, "tie")
    assert pages[0]["view"] == "welcome" and pages[0]["protocol"] == PC and pages[0]["examples"] is None
    assert pages[0]["allow_tie"] and pages[0]["presentation"] == SIDE_BY_SIDE
    choose = pages[1:-1]
    assert [page["view"] for page in choose] == ["choose"] * 3 and pages[-1]["view"] == "done"
    for page in choose:
        (image_a, a), (image_b, b) = (conditions(store)[stimulus] for stimulus in page["images"])
        assert image_a == image_b and a != b and page["item"] not in page["images"]
    assert pages[-1]["completion_code"] == ""
    choices = pd.read_csv(export_study(store, "pc", tmp_path / "out", exclude_flagged=False)[0])  # all answered at once
    assert (choices["choice"] == "tie").all() and (choices["display_ms"] == PHONE["display_ms"]).all()


def test_bad_answers_are_refused_with_a_message_and_not_stored(
    client: TestClient, store: Store, study: StudySummary
) -> None:
    start = client.post(f"/rate/{study.public_id}/start", json={}).json()
    answer = f"/rate/{study.public_id}/answer"
    for body, message in [
        ({"answer": 6}, "A score must be a whole number"),
        ({"answer": "left"}, "This survey asks for a score"),
        ({"answer": 3, "scale": 0}, "scale must be a number from 0.001"),
        ({"answer": 3, "viewport_width": -390}, "viewport_width must be a number from 1"),
        ({"answer": 3, "item": "x" * 22}, "not one you were shown"),  # well-formed ids that lead nowhere
        ({"answer": 3, "token": "y" * 22}, "Unknown participant"),
        ({"answer": 3, "token": "someone-else"}, "token: String should match pattern"),
        ({"item": start["item"]}, "answer: Field required"),
    ]:
        response = client.post(answer, json={"token": start["token"], "item": start["item"], **body})
        assert response.status_code == 400 and message in response.json()["error"], response.text
    assert client.post(f"/rate/{study.public_id}/start", json={"external_id": "x" * 129}).status_code == 400
    ok = client.post(answer, json={"token": start["token"], "item": start["item"], "answer": 3})
    assert ok.json()["done"] == 1  # nothing above was stored


def test_a_crowd_rater_id_resumes_with_its_token_and_another_worker_may_share_the_browser(
    client: TestClient, store: Store, study: StudySummary
) -> None:
    first = client.post(f"/rate/{study.public_id}/start", json={"external_id": "worker-1"}).json()
    client.post(f"/rate/{study.public_id}/answer", json={"token": first["token"], "item": first["item"], "answer": 2})
    reload = client.post(f"/rate/{study.public_id}/open", json={"external_id": "worker-1", "token": first["token"]})
    assert reload.json()["token"] == first["token"] and reload.json()["done"] == 1
    other = client.post(f"/rate/{study.public_id}/start", json={"token": first["token"], "external_id": "w2"}).json()
    assert other["token"] != first["token"] and other["done"] == 0  # another worker on the same browser
    with store.session() as session:
        assert sorted(session.scalars(select(Rater.external_id))) == ["w2", "worker-1"]


def test_links_that_lead_nowhere_get_a_page_or_404_not_a_crash(client: TestClient, study: StudySummary) -> None:
    for study_id in ("nope", "A" * 22, "%3Cscript%3E"):
        page = client.post(f"/rate/{study_id}/open", json={}).json()
        assert page["view"] == "invalid" and "not valid" in page["message"]
    assert client.post("/rate/..%2F..%2Fetc/open", json={}).status_code == 404
    assert client.post("/rate/nope/start", json={}).json()["error"].startswith("This survey link is not valid")
    for name in ("nope", "A" * 22, "..%2Fsurvey.db"):
        assert client.get(f"/rate/{study.public_id}/{name}.png").status_code == 404


def test_the_versions_of_one_image_cannot_be_told_apart_by_their_files_or_headers(
    client: TestClient, store: Store, study: StudySummary, tmp_path: Path
) -> None:
    by_image: dict[str, list[str]] = defaultdict(list)
    for stimulus, (image, _) in conditions(store).items():
        by_image[image].append(stimulus)
    welcome = client.post(f"/rate/{study.public_id}/open", json={}).json()
    by_image["calibration"] = welcome["examples"]
    served = {}
    for image, stimuli in by_image.items():
        responses = [client.get(f"/rate/{study.public_id}/{stimulus}.png") for stimulus in stimuli]
        headers = [{k: v for k, v in r.headers.items() if k != "date"} for r in responses]
        assert all(header == headers[0] for header in headers), image  # same length, Last-Modified, caching
        assert "etag" not in headers[0] and headers[0]["content-type"] == "image/png"
        assert len({r.content for r in responses}) == len(stimuli)  # yet different files
        assert len({tuple(png_chunks(r.content)) for r in responses}) == 1  # of one layout: IHDR, IDAT, IEND
        served.update(zip(stimuli, responses, strict=True))
    assert len({r.headers["last-modified"] for r in served.values()}) == 1  # one time for the whole study
    for stimulus, response in served.items():  # served as stored
        assert response.content == store.png_path(study.public_id, stimulus).read_bytes()
    texts = [client.get(f"/rate/{study.public_id}").text, *map(json.dumps, take_study(client, study.public_id, 3))]
    assert not any(str(tmp_path) in text or "/" in text.replace("</", "") for text in texts[1:])  # no path at all
    assert str(tmp_path) not in texts[0]


def test_stimulus_ids_are_random_not_derived_from_method_image_or_order(store: Store, tmp_path: Path) -> None:
    folder = image_folder(tmp_path / "hr", n_images=4)
    studies = [create_study(store, name, folder, ["bicubic"], reference=True, anchors=True) for name in ("a", "b")]
    made_in_order = select(Stimulus.public_id).join(SourceImage).join(Study).order_by(Stimulus.id)
    with store.session() as session:
        first, second = (session.scalars(made_in_order.where(Study.public_id == s.public_id)).all() for s in studies)
    assert len(first) == len(second) == 12 and not set(first) & set(second)  # same images and methods, other ids
    assert all(OPAQUE.fullmatch(stimulus) for stimulus in first + second)
    assert sorted(first) != first and sorted(second) != second  # ids do not follow the order they were made in
