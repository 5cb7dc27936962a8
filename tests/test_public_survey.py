"""A rater link posted in public (issue #23): what a stranger's browser or script may try on the rater page, and what
it gets. A crowd id is no password (only the rater's own token resumes them; the owner may reset an id); a stimulus
file's length and chunk layout depend only on the image's size, never on how well its pixels compress; scripts meet
rate limits per address, a rater cap and a minimum viewing time; answers are JSON integers 1–5 or exact choices, and
anything else is a 400 (never a 500, and nothing stored); the database and the stimuli are private files."""

import io
import json
import os
import stat
from collections import defaultdict
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import gradio as gr
import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select, update

from conftest import error_line, exit_status
from survey.__main__ import main
from survey.creation import create_study
from survey.db import PC, Assignment, Choice, Rater, Rating, Stimulus, Store, Study, Trial, utc_now
from survey.raters import FULL_TEXT, ID_TAKEN
from survey.stimuli import png_bytes
from survey.store import DATABASE_FILE, open_store
from survey.studies import StudySummary, list_studies
from survey.ui.rate import BlocksWithRaterPage, app_kwargs
from survey.ui.rater_requests import RateLimits
from tests.survey_fixtures import image_folder

NO_LIMITS = RateLimits(open=None, start=None, answer=None)


def new_study(store: Store, tmp_path: Path, name: str = "public", **options: object) -> StudySummary:
    """3 random images of 32×36 px × (bicubic, reference, nearest): 9 stimuli; ``options`` for :func:`create_study`."""
    return create_study(
        store, name, image_folder(tmp_path / name), ["bicubic"], reference=True, anchors=True, **options
    )


def client(store: Store, limits: RateLimits = NO_LIMITS, address: str = "198.51.100.7") -> TestClient:
    """The rater page of ``store`` with ``limits``, as seen from client ``address``."""
    return TestClient(FastAPI(**app_kwargs(store, limits)), client=(address, 50_000))


def viewed(store: Store, token: str, seconds: float = 2.0) -> None:
    """Make rater ``token``'s current photo (or pair) look sent ``seconds`` ago, as if they had looked at it."""
    with store.session() as session, session.begin():
        rater_id = session.scalar(select(Rater.id).where(Rater.token == token))
        for table in (Assignment, Trial):
            shown = update(table).where(table.rater_id == rater_id, table.shown_at.is_not(None))
            session.execute(shown.values(shown_at=utc_now() - timedelta(seconds=seconds)))


def answers_stored(store: Store) -> int:
    with store.session() as session:
        return sum(session.scalar(select(func.count()).select_from(table)) or 0 for table in (Rating, Choice))


def chunk_layout(png: bytes) -> list[tuple[bytes, int]]:
    """(type, data length) of every chunk of a PNG file's bytes, in order."""
    layout, offset = [], 8
    while offset < len(png):
        length = int.from_bytes(png[offset : offset + 4], "big")
        layout.append((png[offset + 4 : offset + 8], length))
        offset += 12 + length
    return layout


# Identity: a crowd id names a rater; only their token resumes them.


def test_knowing_a_crowd_id_gives_nobody_that_raters_session(store: Store, tmp_path: Path) -> None:
    study = new_study(store, tmp_path)
    alice = client(store)
    first = alice.post(f"/rate/{study.public_id}/start", json={"external_id": "alice"}).json()
    alice.post(f"/rate/{study.public_id}/answer", json={"token": first["token"], "item": first["item"], "answer": 4})

    stranger = client(store, address="203.0.113.66")
    for action, body in [
        ("open", {"external_id": "alice"}),
        ("start", {"external_id": "alice"}),
        ("open", {"external_id": " alice ", "token": "A" * 22}),  # a guessed token does not help
    ]:
        response = stranger.post(f"/rate/{study.public_id}/{action}", json=body)
        assert response.status_code == 400 and response.json() == {"error": ID_TAKEN}, (action, response.text)
    assert first["token"] not in stranger.post(f"/rate/{study.public_id}/open", json={"external_id": "alice"}).text

    resumed = alice.post(f"/rate/{study.public_id}/open", json={"external_id": "alice", "token": first["token"]})
    assert resumed.json()["token"] == first["token"] and resumed.json()["done"] == 1  # her own browser resumes
    with store.session() as session:
        assert session.scalars(select(Rater.external_id)).all() == ["alice"]  # and nobody else was let in


def test_the_owner_resets_an_unfinished_crowd_id_and_keeps_finished_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    store = open_store(data)
    study = new_study(store, tmp_path)
    page = client(store)
    old = page.post(f"/rate/{study.public_id}/start", json={"external_id": "bob"}).json()
    page.post(f"/rate/{study.public_id}/answer", json={"token": old["token"], "item": old["item"], "answer": 2})
    done = page.post(f"/rate/{study.public_id}/start", json={"external_id": "carol"}).json()
    while done["view"] == "rate":
        done = page.post(
            f"/rate/{study.public_id}/answer", json={"token": done["token"], "item": done["item"], "answer": 3}
        ).json()

    reset = ["--data-dir", str(data), "reset-rater", "--study", "public", "--rater"]
    assert exit_status(main, [*reset, "bob"]) == 0
    assert "Rater bob of public reset: their unfinished session and 1 answer deleted" in capsys.readouterr().out
    fresh = page.post(f"/rate/{study.public_id}/open", json={"external_id": "bob"}).json()
    assert fresh["view"] == "welcome"  # another browser may now start with the id, afresh
    again = page.post(f"/rate/{study.public_id}/start", json={"external_id": "bob"}).json()
    assert again["token"] != old["token"] and again["done"] == 0
    stale = page.post(f"/rate/{study.public_id}/open", json={"external_id": "bob", "token": old["token"]})
    assert stale.status_code == 400  # the old browser's token is gone

    assert exit_status(main, [*reset, "carol"]) == 1
    assert "has finished public; their answers are kept" in error_line(capsys)
    assert exit_status(main, [*reset, "dave"]) == 1
    assert "No rater of public has the id 'dave'" in error_line(capsys)
    assert answers_stored(store) == 9  # carol's, none of bob's first session


# Blinding by bytes: a file's structure depends on the image's size only.


def test_images_of_one_size_encode_to_one_length_and_chunk_layout_losslessly() -> None:
    rng = np.random.default_rng(0)
    for height, width in [(1, 1), (32, 36), (256, 256), (300, 480)]:
        coarse = np.repeat(np.repeat(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), 4, 0), 4, 1)
        images = {
            "noise": rng.integers(0, 256, (height, width, 3), dtype=np.uint8),  # compresses worst
            "flat": np.full((height, width, 3), 128, dtype=np.uint8),  # compresses best
            "ramp": np.broadcast_to(np.arange(width, dtype=np.uint8)[None, :, None], (height, width, 3)).copy(),
            "blocky": coarse[:height, :width],
        }
        encoded = {name: png_bytes(rgb) for name, rgb in images.items()}
        layouts = {name: chunk_layout(png) for name, png in encoded.items()}
        assert len({len(png) for png in encoded.values()}) == 1, {name: len(png) for name, png in encoded.items()}
        assert len({tuple(layout) for layout in layouts.values()}) == 1, layouts
        assert {chunk for chunk, _ in layouts["noise"]} == {b"IHDR", b"IDAT", b"IEND"}  # no metadata, no padding
        for name, png in encoded.items():
            np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png)).convert("RGB")), images[name])


def test_every_file_of_a_study_has_the_length_and_layout_its_size_gives(store: Store, tmp_path: Path) -> None:
    study = new_study(store, tmp_path, gold=True)
    with store.session() as session:
        stimuli = {s.public_id: s.image.name for s in session.scalars(select(Stimulus))}
        row = session.scalar(select(Study))
        calibration = [row.calibration_high, row.calibration_low]
    files = {name: store.png_path(study.public_id, name).read_bytes() for name in [*stimuli, *calibration]}
    by_image: dict[str, set[tuple[int, tuple]]] = defaultdict(set)
    for name, png in files.items():
        by_image[stimuli.get(name, "calibration")].add((len(png), tuple(chunk_layout(png))))
    assert len(by_image) == 3 + 1 + 1 and all(len(shapes) == 1 for shapes in by_image.values()), by_image
    study_images = {image: shapes for image, shapes in by_image.items() if image.startswith("photo")}
    assert len(set.union(*study_images.values())) == 1  # 32×36 px each: one length for every stimulus of the study


# Scripts: rate limits per address, a cap on raters, a minimum viewing time.


def test_a_script_meets_the_rate_limits_with_429_and_a_message_a_rater_never_sees(store: Store, tmp_path: Path) -> None:
    study = new_study(store, tmp_path)
    app = FastAPI(**app_kwargs(store, RateLimits()))  # the defaults
    script, rater = (TestClient(app, client=(address, 50_000)) for address in ("203.0.113.5", "198.51.100.20"))
    state = script.post(f"/rate/{study.public_id}/start", json={}).json()
    statuses = []
    for _ in range(5):  # answers as fast as it can (the study has no minimum viewing time)
        response = script.post(f"/rate/{study.public_id}/answer", json={"token": state["token"], "item": state["item"],
                                                                         "answer": 3})  # fmt: skip
        statuses.append(response.status_code)
        state = response.json() if response.status_code == 200 else state
    assert statuses == [200, 200, 200, 429, 429] and answers_stored(store) == 3
    assert response.json() == {
        "error": "Too many requests from your address (at most 3 per 1 second). Please wait a moment and try again."
    }
    starts = [script.post(f"/rate/{study.public_id}/start", json={}).status_code for _ in range(10)]
    assert starts == [200] * 9 + [429]  # 10 starts a minute, the first one included
    opens = [script.post(f"/rate/{study.public_id}/open", json={}).status_code for _ in range(61)]
    assert opens == [200] * 60 + [429]
    other = rater.post(f"/rate/{study.public_id}/start", json={})  # another address is not held up
    assert other.status_code == 200 and other.json()["view"] == "rate"


def test_the_rate_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SR_LAB_RATE_LIMIT_ANSWER", "100/minute")
    monkeypatch.setenv("SR_LAB_RATE_LIMIT_OPEN", "none")
    monkeypatch.delenv("SR_LAB_RATE_LIMIT_START", raising=False)
    limits = RateLimits.from_env()
    assert limits == RateLimits(open=None, start=RateLimits().start, answer="100/minute")
    assert str(limits) == "open none, start 10/minute;50/hour, answer 100/minute"
    monkeypatch.setenv("SR_LAB_RATE_LIMIT_START", "ten a minute")
    with pytest.raises(ValueError, match="The rate limit of start is not valid"):
        RateLimits.from_env()


def test_a_full_study_tells_new_raters_so_and_keeps_its_raters(store: Store, tmp_path: Path) -> None:
    study = new_study(store, tmp_path, max_raters=2)
    page = client(store)
    first, second = (page.post(f"/rate/{study.public_id}/start", json={}).json() for _ in range(2))
    for action in ("open", "start"):
        late = page.post(f"/rate/{study.public_id}/{action}", json={"external_id": "late"})
        assert late.status_code == 200 and late.json()["view"] == "closed" and late.json()["message"] == FULL_TEXT
    for rater in (first, second):
        back = page.post(f"/rate/{study.public_id}/open", json={"token": rater["token"]}).json()
        assert back["view"] == "rate" and back["token"] == rater["token"]
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(Rater)) == 2
        assert session.scalar(select(Study.max_raters)) == 2


def test_answers_sooner_than_the_minimum_viewing_time_are_refused_and_not_stored(store: Store, tmp_path: Path) -> None:
    acr = new_study(store, tmp_path, "acr", min_view_ms=1000)
    pc = new_study(store, tmp_path, "pc", min_view_ms=1500, protocol=PC)
    page = client(store)
    cases = [(acr, 4, "the photo for at least 1 s"), (pc, "left", "both versions for at least 1.5 s")]
    for study, answer, what in cases:
        state = page.post(f"/rate/{study.public_id}/start", json={}).json()
        assert state["min_view_ms"] == (1000 if study is acr else 1500)  # the page waits that long
        body = {"token": state["token"], "item": state["item"], "answer": answer}
        refused = page.post(f"/rate/{study.public_id}/answer", json=body)
        assert refused.status_code == 400
        assert refused.json() == {"error": f"Please look at {what} before answering."}
        assert answers_stored(store) == (0 if study is acr else 1)
        viewed(store, state["token"], seconds=1.6)
        accepted = page.post(f"/rate/{study.public_id}/answer", json=body).json()
        assert accepted["done"] == 1 and accepted["item"] != state["item"]
    with store.session() as session:
        response_ms = [*session.scalars(select(Rating.response_ms)), *session.scalars(select(Choice.response_ms))]
    assert len(response_ms) == 2 and min(response_ms) >= 1500  # stored, for the too-fast rule of the export


def test_the_command_line_caps_raters_and_sets_the_viewing_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    create = [*data, "create", "--images", str(image_folder(tmp_path / "hr")), "--methods", "bicubic", "--anchors"]
    assert exit_status(main, [*create, "--name", "default"]) == 0 and "answers after 1000 ms" in capsys.readouterr().out
    assert exit_status(main, [*create, "--name", "capped", "--max-raters", "30", "--min-view-ms", "0"]) == 0
    out = capsys.readouterr().out
    assert "at most 30 raters" in out and "answers after" not in out
    summaries = {s.name: s for s in list_studies(open_store(tmp_path / "data"))}
    assert (summaries["default"].max_raters, summaries["default"].min_view_ms) == (None, 1000)
    assert (summaries["capped"].max_raters, summaries["capped"].min_view_ms) == (30, 0)
    assert exit_status(main, [*create, "--name", "bad", "--max-raters", "0"]) == 1
    assert "room for at least 1 rater" in error_line(capsys)


# Strict answers: a JSON integer on the scale, or exactly a choice; anything else is a 400 and stores nothing.


#: Answers that are neither a JSON integer on the scale (ACR) nor exactly a choice (PC, without ties), as JSON text.
NOT_ANSWERS = {
    "acr": ["true", "false", "4.5", "4.0", '"4"', '"\\u0664"', "1e400", "Infinity", "-Infinity", "NaN", "[4]",
            '{"score": 4}', "null", "0", "6", "99999999999999999999999", '"left"'],
    "pc": ['"LEFT"', '" left"', '"Left"', '"tie"', "1", "true", '"\\ud800"', "null"],
}  # fmt: skip


def test_only_a_whole_score_or_an_exact_choice_is_an_answer(store: Store, tmp_path: Path) -> None:
    page = client(store)
    for protocol, answers in NOT_ANSWERS.items():
        study = new_study(store, tmp_path, protocol, protocol=protocol)  # PC without ties
        state = page.post(f"/rate/{study.public_id}/start", json={}).json()
        stored = answers_stored(store)
        for answer in answers:
            body = f'{{"token": "{state["token"]}", "item": "{state["item"]}", "answer": {answer}}}'
            response = page.post(f"/rate/{study.public_id}/answer", content=body,
                                 headers={"content-type": "application/json"})  # fmt: skip
            assert response.status_code == 400 and isinstance(response.json()["error"], str), (answer, response.text)
        assert answers_stored(store) == stored
        good = {"token": state["token"], "item": state["item"], "answer": 4 if protocol == "acr" else "left"}
        assert page.post(f"/rate/{study.public_id}/answer", json=good).json()["done"] == 1


#: Every field of every rater endpoint's body, by endpoint.
FIELDS = {
    "open": ["token", "external_id"],
    "start": ["token", "external_id", "self_report"],
    "answer": ["token", "item", "answer", "viewport_width", "viewport_height", "device_pixel_ratio", "scale",
               "display_ms"],
}  # fmt: skip
#: Values no field takes: lone surrogates (JSON spells them "\ud800"), numbers JSON lacks (Python's parser reads
#: Infinity and NaN), a number too large to store, and the wrong JSON types.
HOSTILE_VALUES = ["\ud800", "x\udfff", float("inf"), float("nan"), 2**70, True, ["x"], {"x": 1}]


@pytest.mark.parametrize(
    ("action", "field"), [(action, field) for action, fields in FIELDS.items() for field in fields]
)
def test_every_field_refuses_what_it_cannot_take_with_a_400_and_stores_nothing(
    store: Store, tmp_path: Path, action: str, field: str
) -> None:
    study = new_study(store, tmp_path)
    page = client(store)
    state = page.post(f"/rate/{study.public_id}/start", json={}).json()
    valid = {"token": state["token"], "item": state["item"], "answer": 3} if action == "answer" else {}
    for value in HOSTILE_VALUES:
        content = json.dumps({**valid, field: value})  # a lone surrogate escaped, inf and nan as Python writes them
        response = page.post(f"/rate/{study.public_id}/{action}", content=content,
                             headers={"content-type": "application/json"})  # fmt: skip
        assert response.status_code == 400 and isinstance(response.json()["error"], str), (value, response.text)
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(Rater)) == 1
    assert answers_stored(store) == 0


#: Bodies that are not an endpoint's JSON, and the statuses that refuse them (413: the app's body limit).
MALFORMED = [
    (b"not json", {400}),
    (b'{"token": ', {400}),
    (b"[" * 100_000 + b"]" * 100_000, {400, 413}),  # nested deeper than any parser's stack
    (b'"just a string"', {400}),
    (b"[]", {400}),
    (json.dumps({"self_report": "x" * 2_000_000}).encode(), {400, 413}),  # 2 MB
    ('{"external_id": "caf\u00e9"}'.encode("latin-1"), {400}),  # not UTF-8
]


def test_malformed_bodies_get_a_400_or_413_with_a_message(store: Store, tmp_path: Path) -> None:
    study = new_study(store, tmp_path)
    page = client(store)
    for body, statuses in MALFORMED:
        response = page.post(f"/rate/{study.public_id}/start", content=body,
                             headers={"content-type": "application/json"})  # fmt: skip
        assert response.status_code in statuses, (body[:50], response.text[:300])
        if response.status_code == 400:
            assert isinstance(response.json()["error"], str)
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(Rater)) == 0


# Private files: what the survey creates only its owner can read.


@pytest.fixture()
def umask() -> Iterator[None]:
    """A usual umask (022: files readable by everyone unless created otherwise) for the test."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_database_and_the_stimuli_are_created_private_and_existing_modes_are_kept(
    tmp_path: Path, umask: None
) -> None:
    data = tmp_path / "lab" / "data"
    store = open_store(data)
    study = new_study(store, tmp_path)
    client(store).post(f"/rate/{study.public_id}/start", json={})  # a write: SQLite makes its WAL file
    assert mode(data) == 0o700 and mode(data / DATABASE_FILE) == 0o600
    assert mode(data / f"{DATABASE_FILE}-wal") == 0o600
    assert mode(store.stimuli_dir) == 0o700 and mode(store.study_dir(study.public_id)) == 0o700
    store.engine.dispose()
    assert mode(open_store(data).data_dir) == 0o700 and mode(data / DATABASE_FILE) == 0o600  # reopened: unchanged

    chosen = tmp_path / "chosen"  # made by the owner (or an earlier version) with modes of their choosing
    chosen.mkdir(mode=0o750)
    (chosen / DATABASE_FILE).touch(mode=0o640)
    open_store(chosen)
    assert mode(chosen) == 0o750 and mode(chosen / DATABASE_FILE) == 0o640


# All of it through the app, as ``python app.py`` serves it on loopback.


@pytest.mark.slow
def test_through_the_app_a_stranger_gets_refusals_and_a_rater_gets_on(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default limits; uvicorn takes the client's address from X-Forwarded-For when the request comes from
    loopback (a proxy on the same machine), so each header here is another client."""
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    for endpoint in ("OPEN", "START", "ANSWER"):
        monkeypatch.delenv(f"SR_LAB_RATE_LIMIT_{endpoint}", raising=False)
    study = new_study(store, tmp_path, min_view_ms=1000)
    with BlocksWithRaterPage(store) as demo:
        gr.Markdown("The lab.")
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True)
    try:
        base = f"{url}rate/{study.public_id}"
        alice = httpx.Client(headers={"X-Forwarded-For": "198.51.100.1"})
        script = httpx.Client(headers={"X-Forwarded-For": "203.0.113.9"})
        state = alice.post(f"{base}/start", json={"external_id": "alice"}).json()
        assert script.post(f"{base}/open", json={"external_id": "alice"}).json() == {"error": ID_TAKEN}
        answer = {"token": state["token"], "item": state["item"], "answer": 5}
        too_soon = alice.post(f"{base}/answer", json=answer)
        assert too_soon.status_code == 400 and "at least 1 s" in too_soon.json()["error"]
        raw = json.dumps({**answer, "scale": float("inf")})
        infinite = alice.post(f"{base}/answer", content=raw, headers={"content-type": "application/json"})
        assert infinite.status_code == 400 and "finite" in infinite.json()["error"]

        png = alice.get(f"{base}/{state['item']}.png", headers={"Accept-Encoding": "gzip, br"})
        assert "content-encoding" not in png.headers and "no-transform" in png.headers["cache-control"]
        assert int(png.headers["content-length"]) == len(png.content) == len(png_bytes(np.zeros((32, 36, 3), np.uint8)))

        starts = [script.post(f"{base}/start", json={}).status_code for _ in range(11)]
        assert starts == [200] * 10 + [429]
        viewed(store, state["token"])
        assert alice.post(f"{base}/answer", json=answer).json()["done"] == 1  # another address goes on
    finally:
        demo.close()
