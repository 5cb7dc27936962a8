"""A simulated crowd through the rater page's JSON API on a study with the crowd checks (issue #24): careful raters, a
bot that answers at once, a straight-liner, one who ignores the trapping items, one who tries to skip the training
round, one whose window is too small. Exactly the bad ones are rejected, each for its reason, and get no completion
code; ``accepted_codes.csv`` names the careful ones only."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from survey.creation import create_study
from survey.crowd import CrowdChecks
from survey.db import (
    BROKEN,
    GOLD,
    NEAREST,
    PC,
    REFERENCE,
    TRAINING,
    TRAP,
    Rater,
    Rating,
    SourceImage,
    Stimulus,
    Store,
    utc_now,
)
from survey.export import export_study
from survey.studies import StudySummary
from tests.survey_fixtures import image_folder
from tests.test_public_survey import client, viewed

CODE = "CROWD-OK"
#: A window that shows the 36×32 photos at 1:1, and one that does not.
BIG_WINDOW = {"viewport_width": 1280, "viewport_height": 720, "device_pixel_ratio": 1.0}
SMALL_WINDOW = {"viewport_width": 30, "viewport_height": 20, "device_pixel_ratio": 1.0}
#: What a careful rater gives each condition (gold and trapping items apart).
CAREFUL = {NEAREST: 1, "bicubic": 3, REFERENCE: 5}

#: How a simulated rater answers: (its item as (role, condition, expected score), its position) -> score.
Answering = Callable[[tuple[str, str, int | None], int], int]


def careful(item: tuple[str, str, int | None], position: int) -> int:
    role, condition, expected = item
    if role == TRAP:
        return expected or 0
    return min(5, max(1, CAREFUL.get(condition, 3) + (position % 3 == 0) * (1 if condition == NEAREST else -1)))


def straight(item: tuple[str, str, int | None], position: int) -> int:
    return 3


def ignores_traps(item: tuple[str, str, int | None], position: int) -> int:
    return 4 if item[0] == TRAP else careful(item, position)


@pytest.fixture()
def study(store: Store, tmp_path: Path) -> StudySummary:
    """4 images × (bicubic, reference, nearest), gold items, 2 trapping items, a training round of 3."""
    return create_study(
        store, "crowd", image_folder(tmp_path / "hr", n_images=4), ["bicubic"], reference=True, anchors=True,
        gold=True, completion_code=CODE,
        crowd=CrowdChecks(traps=2, training_items=3, training_pause_s=3600, qualification=True, withhold_code=True),
    )  # fmt: skip


def items(store: Store) -> dict[str, tuple[str, str, int | None]]:
    """Stimulus id -> (its image's role, its condition, the score a trapping item asks for)."""
    with store.session() as session:
        stimuli = session.scalars(select(Stimulus))
        return {s.public_id: (s.image.role, s.condition.name, s.expected_score) for s in stimuli}


def rate_through(api: TestClient, store: Store, study: StudySummary, worker: str, answering: Answering,
                 look: bool = True) -> dict:  # fmt: skip
    """Worker ``worker`` starts and answers everything with ``answering``, looking at each photo 3 s (or answering
    the moment it arrives, ``look=False``); the done page."""
    known = items(store)
    page = api.post(f"/rate/{study.public_id}/start", json={"external_id": worker, **BIG_WINDOW}).json()
    while page["view"] == "rate":
        if look:
            viewed(store, page["token"], seconds=3)
        body = {"token": page["token"], "item": page["item"], "answer": answering(known[page["item"]], page["done"])}
        page = api.post(f"/rate/{study.public_id}/answer", json=body).json()
    assert page["view"] == "done"
    return page


def test_a_simulated_crowd_ends_with_exactly_the_bad_raters_rejected(
    store: Store, study: StudySummary, tmp_path: Path
) -> None:
    api = client(store)
    with store.session() as session:
        roles = dict(session.execute(select(SourceImage.name, SourceImage.role)).tuples().all())
    assert sorted(roles.values()).count(TRAP) == 2 and GOLD in roles.values() and TRAINING in roles.values()

    done = {f"careful-{k}": rate_through(api, store, study, f"careful-{k}", careful) for k in range(4)}
    done["bot"] = rate_through(api, store, study, "bot", careful, look=False)
    done["straight"] = rate_through(api, store, study, "straight", straight)
    done["trap"] = rate_through(api, store, study, "trap", ignores_traps)
    for worker in ("careful-0", "careful-1", "careful-2", "careful-3"):
        assert done[worker]["completion_code"] == CODE and done[worker]["failed_checks"] == []
    assert done["bot"]["completion_code"] == "" and any("fast" in text for text in done["bot"]["failed_checks"])
    assert done["straight"]["completion_code"] == ""
    assert any("same score" in text or "straight" in text for text in done["straight"]["failed_checks"])
    assert done["trap"]["completion_code"] == "" and any("trap" in text for text in done["trap"]["failed_checks"])

    # The training round comes first and cannot be skipped: a study photo's id (leaked, guessed) is refused.
    skipper = api.post(f"/rate/{study.public_id}/start", json={"external_id": "skipper", **BIG_WINDOW}).json()
    assert skipper["training"] and skipper["done"] == 0
    study_item = next(i for i, (role, _, _) in items(store).items() if role == "study")
    body = {"token": skipper["token"], "item": study_item, "answer": 3}
    refused = api.post(f"/rate/{study.public_id}/answer", json=body)
    assert refused.status_code == 400 and "not one you were shown" in refused.json()["error"]

    # A window too small for the photos at 1:1 is told so and cannot start.
    small = api.post(f"/rate/{study.public_id}/start", json={"external_id": "small", **SMALL_WINDOW})
    assert small.status_code == 400 and "36×32" in small.json()["error"] and "30×20" in small.json()["error"]
    with store.session() as session:
        assert session.scalar(select(Rater.id).where(Rater.external_id == "small")) is None

    export_study(store, study.name, tmp_path / "out")
    raters = pd.read_csv(tmp_path / "out" / "raters.csv", keep_default_na=False).set_index("external_id")
    rejected = raters[raters["status"] == "rejected"]
    assert set(rejected.index) == {"bot", "straight", "trap", "skipper"}
    assert "fast" in rejected.loc["bot", "reasons"]
    assert "trap" in rejected.loc["trap", "reasons"] and "fast" not in rejected.loc["trap", "reasons"]
    assert "training" in rejected.loc["skipper", "reasons"]
    assert (raters.loc[[f"careful-{k}" for k in range(4)], "reasons"] == "").all()
    codes = pd.read_csv(tmp_path / "out" / "accepted_codes.csv", keep_default_na=False)
    assert sorted(codes["external_id"]) == [f"careful-{k}" for k in range(4)] and set(codes["completion_code"]) == {
        CODE
    }


def test_the_training_round_comes_back_after_a_long_pause(store: Store, study: StudySummary) -> None:
    api = client(store)
    page = api.post(f"/rate/{study.public_id}/start", json=BIG_WINDOW).json()
    known = items(store)
    for _ in range(4):  # the 3 training photos, then a first photo of the study
        assert page["training"] == (page["done"] < 3)
        viewed(store, page["token"], seconds=3)
        body = {"token": page["token"], "item": page["item"], "answer": careful(known[page["item"]], page["done"])}
        page = api.post(f"/rate/{study.public_id}/answer", json=body).json()
    assert (page["done"], page["training"]) == (4, False)
    with store.session() as session, session.begin():  # the rater went away for two hours
        session.execute(update(Rating).values(created_at=utc_now() - timedelta(hours=2)))
    back = api.post(f"/rate/{study.public_id}/open", json={"token": page["token"]}).json()
    assert (back["done"], back["training"]) == (1, True)  # the study's answer is kept, the training is given again


def test_a_pair_comparison_crowd_study_traps_with_a_broken_version(store: Store, tmp_path: Path) -> None:
    study = create_study(
        store, "pc-crowd", image_folder(tmp_path / "hr", n_images=3), ["bicubic"], reference=True, protocol=PC,
        completion_code=CODE, crowd=CrowdChecks(traps=1, training_items=2, withhold_code=True),
    )  # fmt: skip
    conditions = {stimulus: condition for stimulus, (_, condition, _) in items(store).items()}
    api = client(store)
    page = api.post(f"/rate/{study.public_id}/start", json={}).json()
    trainings = []
    while page["view"] == "choose":
        trainings.append(page["training"])
        left, right = (conditions[image] for image in page["images"])
        viewed(store, page["token"], seconds=3)
        worse = "left" if left == BROKEN else "right" if right == BROKEN else "left"  # prefers the broken version
        body = {"token": page["token"], "item": page["item"], "answer": worse}
        page = api.post(f"/rate/{study.public_id}/answer", json=body).json()
    assert trainings[:2] == [True, True] and not any(trainings[2:]) and len(trainings) == 2 + 3 + 1
    assert page["completion_code"] == "" and page["failed_checks"] == ["trap: preferred the damaged version"]


@pytest.mark.parametrize(
    "window",
    [
        {**BIG_WINDOW, "device_pixel_ratio": 1e308},  # width × ratio overflows
        {**BIG_WINDOW, "viewport_width": 10**30},
        {**BIG_WINDOW, "viewport_height": -5},
        {**BIG_WINDOW, "device_pixel_ratio": "3"},
        {**BIG_WINDOW, "viewport_width": True},
    ],
)
def test_a_window_out_of_range_is_refused_with_a_message(store: Store, study: StudySummary, window: dict) -> None:
    refused = client(store).post(f"/rate/{study.public_id}/start", json={"external_id": "odd", **window})
    assert refused.status_code == 400 and refused.json()["error"]
    with store.session() as session:
        assert session.scalar(select(Rater.id)) is None
