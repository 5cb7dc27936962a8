"""Studies for crowd platforms: a fixed crop that fits phones, completion codes, gold (trapping) items that flag
careless raters with the reason, and databases made before these existed."""

import random
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sqlalchemy import select

from conftest import error_line, exit_status
from sr_app.images import load_rgb
from sr_app.resize import make_lr
from survey.__main__ import main
from survey.answers import Viewing, submit_rating
from survey.creation import create_study
from survey.db import GOLD, NEAREST, REFERENCE, STUDY_IMAGE, Rating, SourceImage, Stimulus, Store
from survey.export import RATERS_COLUMNS, RATINGS_COLUMNS, export_study
from survey.raters import start_rater
from survey.stimuli import Crop
from survey.store import DATABASE_FILE, open_store
from survey.studies import StudySummary, list_studies
from tests.survey_fixtures import image_folder, set_response_times

#: How an attentive rater scores each condition, gold items included.
CAREFUL = {NEAREST: 1, "bicubic": 3, REFERENCE: 5}


def stimulus_info(store: Store) -> dict[str, tuple[str, str, bool]]:
    """Stimulus id → (image, condition, whether the image is the gold one)."""
    with store.session() as session:
        stimuli = session.scalars(select(Stimulus))
        return {s.public_id: (s.image.name, s.condition.name, s.image.role == GOLD) for s in stimuli}


def test_crop_cuts_the_centre_of_every_image_and_output_at_multiples_of_4(store: Store, tmp_path: Path) -> None:
    images = image_folder(tmp_path / "hr", n_images=2, size=(34, 38))  # 32 × 36 once cut to a multiple of 4
    outputs = tmp_path / "outputs" / "theirs"
    outputs.mkdir(parents=True)
    for path in images.iterdir():  # "their method": the original itself, at the size of the uncut ground truth
        Image.fromarray(make_lr(load_rgb(path), 4)[1]).save(outputs / path.name)
    summary = create_study(
        store, "crop", images, ["bicubic"], outputs=outputs.parent, reference=True, crop=Crop.parse("16x20")
    )
    assert summary.conditions == ("bicubic", "theirs", REFERENCE)
    for stimulus, (image, condition, _) in stimulus_info(store).items():
        rgb = load_rgb(store.png_path(summary.public_id, stimulus))
        assert rgb.shape == (20, 16, 3)  # W×H = 16×20
        original = make_lr(load_rgb(images / f"{image}.png"), 4)[1]
        if condition in (
            REFERENCE,
            "theirs",
        ):  # cut at the same place: top (32 − 20) / 2 → 4, left (36 − 16) / 2 = 10 → 8
            np.testing.assert_array_equal(rgb, original[4:24, 8:24])
    with store.session() as session:
        assert {(image.width, image.height) for image in session.scalars(select(SourceImage))} == {(16, 20)}
        calibration = session.scalars(select(Stimulus)).first().image.study.calibration_high
    assert load_rgb(store.png_path(summary.public_id, calibration)).shape == (20, 16, 3)


@pytest.mark.parametrize(
    ("crop", "message"),
    [
        ("15x20", "multiples of 4"),
        ("16 by 20", "WIDTHxHEIGHT"),
        ("40x20", "photo0.png is 36×32 (cut to a multiple of 4), smaller than the crop 40x20"),
    ],
)
def test_bad_crops_are_refused_with_the_reason_and_write_nothing(
    tmp_path: Path, crop: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    images = str(image_folder(tmp_path / "hr"))
    create = [*data, "create", "--name", "c", "--images", images, "--methods", "bicubic", "--crop", crop]
    assert exit_status(main, create) == 1
    assert message in error_line(capsys)
    assert exit_status(main, [*data, "list"]) == 0 and "No studies yet" in capsys.readouterr().out
    stimuli = tmp_path / "data" / "stimuli"
    assert not stimuli.exists() or not any(stimuli.iterdir())


def test_the_command_line_creates_a_crowd_study(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    images = str(image_folder(tmp_path / "hr"))
    create = [*data, "create", "--name", "crowd", "--images", images, "--methods", "bicubic", "--anchors"]
    assert exit_status(main, [*create, "--reference", "--crop", "16x16", "--completion-code", "C0DE-1", "--gold"]) == 0
    out = capsys.readouterr().out
    assert "3 images × 3 conditions (bicubic, reference, nearest; gold items; completion code C0DE-1)" in out
    assert "0 raters (0 finished), 0 ratings" in out and "/rate/" in out
    (summary,) = list_studies(open_store(tmp_path / "data"))
    assert summary.completion_code == "C0DE-1" and summary.gold
    pc = [*create, "--name", "pc", "--protocol", "pc", "--gold"]
    assert exit_status(main, pc) == 1 and "pair comparison studies (protocol pc) have none" in error_line(capsys)


@pytest.fixture()
def gold_study(store: Store, tmp_path: Path) -> StudySummary:
    """2 images × (bicubic, reference, nearest) and the two gold items: 8 stimuli per rater."""
    folder = image_folder(tmp_path / "hr", n_images=2)
    return create_study(store, "gold", folder, ["bicubic"], reference=True, anchors=True, gold=True)


def rate(store: Store, study: StudySummary, seed: int, gold_nearest: int = CAREFUL[NEAREST]) -> list[tuple[str, str]]:
    """A rater who scores by :data:`CAREFUL` except the gold nearest-neighbour item; returns what they saw."""
    info, seen = stimulus_info(store), []
    state = start_rater(store, study.public_id, rng=random.Random(seed), external_id=f"worker-{seed}")
    while not state.finished:
        image, condition, gold = info[state.stimulus or ""]
        seen.append((image, condition))
        score = gold_nearest if gold and condition == NEAREST else CAREFUL[condition]
        state = submit_rating(store, study.public_id, state.token, state.stimulus or "", score, Viewing(scale=1.0))
    return seen


def test_gold_items_are_mixed_in_left_out_of_the_analysis_and_flag_who_fails_them(
    store: Store, gold_study: StudySummary, tmp_path: Path
) -> None:
    assert gold_study.images == 2 and gold_study.conditions == ("bicubic", REFERENCE, NEAREST) and gold_study.gold
    seen = [rate(store, gold_study, seed, gold_nearest=4 if seed == 1 else 1) for seed in range(3)]
    for order in seen:
        assert len(order) == 8 and sum(image.startswith("gold/") for image, _ in order) == 2
        assert all(a[0] != b[0] for a, b in zip(order, order[1:], strict=False))  # never one image twice in a row
    set_response_times(store)
    export_study(store, "gold", tmp_path / "all")
    ratings = pd.read_csv(tmp_path / "all" / "ratings.csv")
    assert list(ratings.columns) == RATINGS_COLUMNS and len(ratings) == 3 * 6
    assert not ratings["image"].str.startswith("gold").any() and (ratings["scale"] == 1.0).all()
    raters = pd.read_csv(tmp_path / "all" / "raters.csv", keep_default_na=False)
    assert list(raters.columns) == RATERS_COLUMNS
    assert raters["external_id"].tolist() == ["worker-0", "worker-1", "worker-2"]
    assert raters["gold_fail"].tolist() == [False, True, False] and raters["flagged"].tolist() == [False, True, False]
    assert raters["flag_reason"].tolist() == ["", "gold nearest scored 4 (expected 1–2)", ""]
    export_study(store, "gold", tmp_path / "screened", exclude_flagged=True)
    mos = pd.read_csv(tmp_path / "screened" / "mos_by_method.csv").set_index("method")
    assert mos["n_raters"].tolist() == [2, 2, 2] and mos.loc["bicubic", "mos"] == 3.0


def test_other_rules_and_gold_give_every_reason(store: Store, gold_study: StudySummary, tmp_path: Path) -> None:
    state = start_rater(store, gold_study.public_id)
    while not state.finished:  # the same score for everything: no correlation with the MOS, and a gold item missed
        state = submit_rating(store, gold_study.public_id, state.token, state.stimulus or "", 3)
    set_response_times(store)
    export_study(store, "gold", tmp_path / "out", exclude_flagged=False)  # its one rater is rejected
    (reason,) = pd.read_csv(tmp_path / "out" / "raters.csv")["flag_reason"]
    assert reason == (
        "no correlation with the MOS (constant scores, or fewer than 2); gold nearest scored 3 (expected 1–2); "
        "gold reference scored 3 (expected 4–5)"
    )


def test_a_gold_image_is_cut_to_the_size_of_the_study_images(store: Store, gold_study: StudySummary) -> None:
    shapes = {
        (image, gold): load_rgb(store.png_path(gold_study.public_id, stimulus)).shape
        for stimulus, (image, _, gold) in stimulus_info(store).items()
    }
    assert set(shapes.values()) == {(32, 36, 3)} and ("gold/coffee", True) in shapes


#: The tables of the previous version that this one added columns to, as it made them in SQLite.
OLD_TABLES = {
    "studies": """CREATE TABLE studies (
        id INTEGER NOT NULL, public_id VARCHAR(32) NOT NULL, name VARCHAR(200) NOT NULL, instructions TEXT NOT NULL,
        status VARCHAR(8) NOT NULL, created_at DATETIME NOT NULL, calibration_high VARCHAR(32) NOT NULL,
        calibration_low VARCHAR(32) NOT NULL, protocol VARCHAR(8) DEFAULT 'acr' NOT NULL,
        allow_tie BOOLEAN DEFAULT 0 NOT NULL, presentation VARCHAR(16) DEFAULT 'flip' NOT NULL,
        PRIMARY KEY (id), UNIQUE (public_id), UNIQUE (name))""",
    "source_images": """CREATE TABLE source_images (
        id INTEGER NOT NULL, study_id INTEGER NOT NULL, name VARCHAR(255) NOT NULL, width INTEGER NOT NULL,
        height INTEGER NOT NULL, PRIMARY KEY (id), UNIQUE (study_id, name),
        FOREIGN KEY(study_id) REFERENCES studies (id) ON DELETE CASCADE)""",
    "raters": """CREATE TABLE raters (
        id INTEGER NOT NULL, token VARCHAR(32) NOT NULL, study_id INTEGER NOT NULL, started_at DATETIME NOT NULL,
        finished_at DATETIME, self_report TEXT, PRIMARY KEY (id), UNIQUE (token),
        FOREIGN KEY(study_id) REFERENCES studies (id) ON DELETE CASCADE)""",
    "ratings": """CREATE TABLE ratings (
        id INTEGER NOT NULL, rater_id INTEGER NOT NULL, stimulus_id INTEGER NOT NULL, score INTEGER NOT NULL,
        response_ms INTEGER NOT NULL, created_at DATETIME NOT NULL, PRIMARY KEY (id),
        UNIQUE (rater_id, stimulus_id))""",
}


def old_store(data: Path, *statements: str) -> Store:
    """The store of a SQLite database made in ``data`` by an earlier version (:data:`OLD_TABLES`, one study), then
    changed by ``statements``, opened by this one."""
    data.mkdir()
    with sqlite3.connect(data / DATABASE_FILE) as connection:
        for table in OLD_TABLES.values():
            connection.execute(table)
        connection.execute(
            "INSERT INTO studies VALUES (1, 'old-id', 'old', 'Rate.', 'open', '2024-01-01 00:00:00', 'h', 'l', 'acr', "
            "0, 'flip')"
        )
        for statement in statements:
            connection.execute(statement)
    return open_store(data, database_url=f"sqlite:///{data / DATABASE_FILE}")


def test_a_database_from_before_the_rater_page_gets_the_new_columns(tmp_path: Path) -> None:
    store = old_store(tmp_path / "data")
    (old,) = list_studies(store)
    assert old.completion_code is None and not old.gold
    assert old.max_raters is None and old.min_view_ms == 0  # no cap, no minimum viewing time: as it was made
    study = create_study(
        store, "new", image_folder(tmp_path / "hr"), ["bicubic"], reference=True, anchors=True, gold=True,
        completion_code="X",
    )  # fmt: skip
    state = start_rater(store, study.public_id, external_id="p1")
    state = submit_rating(store, study.public_id, state.token, state.stimulus or "", 4, Viewing(390, 844, 3, 1, 900))
    with store.session() as session:
        rating = session.scalars(select(Rating)).one()
        assert (rating.viewport_width, rating.display_ms, rating.rater.external_id) == (390, 900, "p1")


def test_gold_images_of_a_database_from_before_image_roles_keep_their_role(tmp_path: Path) -> None:
    store = old_store(
        tmp_path / "data",
        "ALTER TABLE source_images ADD COLUMN gold BOOLEAN DEFAULT 0 NOT NULL",  # as it was then
        "INSERT INTO source_images (id, study_id, name, width, height, gold) "
        "VALUES (1, 1, 'photo', 32, 32, 0), (2, 1, 'gold-photo', 32, 32, 1)",
    )
    with store.session() as session:
        assert dict(session.execute(select(SourceImage.name, SourceImage.role)).tuples().all()) == {
            "photo": STUDY_IMAGE, "gold-photo": GOLD,
        }  # fmt: skip
    (old,) = list_studies(store)
    assert old.gold and old.images == 1
