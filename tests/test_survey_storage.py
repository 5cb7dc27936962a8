import random
import re
import threading
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from sr_app.images import load_rgb
from sr_app.resize import make_lr
from sr_app.weights import WeightsError
from survey.answers import submit_rating
from survey.creation import create_study
from survey.db import CLOSED, NEAREST, REFERENCE, Assignment, Rater, Rating, Stimulus, Store
from survey.errors import SurveyError
from survey.raters import progress, start_rater
from survey.schedule import playlist
from survey.store import open_store
from survey.studies import StudySummary, list_studies, set_status
from tests.survey_fixtures import image_folder, png_chunks

TOKEN = re.compile(r"[A-Za-z0-9_-]{22}")


@pytest.fixture()
def study(store: Store, tmp_path: Path) -> StudySummary:
    """3 images of 32×36 px × (bicubic, reference, nearest): 9 stimuli."""
    return create_study(store, "s1", image_folder(tmp_path / "hr"), ["bicubic"], reference=True, anchors=True)


def count_ratings(store: Store) -> int:
    with store.session() as session:
        return session.scalar(select(func.count()).select_from(Rating)) or 0


def rate_all(store: Store, study_id: str, score: int = 3) -> str:
    state = start_rater(store, study_id)
    while not state.finished:
        state = submit_rating(store, study_id, state.token, state.stimulus or "", score)
    return state.token


def test_stimuli_are_metadata_free_pngs_of_one_size_per_image(
    store: Store, study: StudySummary, tmp_path: Path
) -> None:
    assert study.conditions == ("bicubic", REFERENCE, NEAREST) and study.images == 3
    files = sorted(store.study_dir(study.public_id).iterdir())
    assert len(files) == 9 + 2  # stimuli + the two calibration images
    for path in files:
        assert TOKEN.fullmatch(path.stem) and path.suffix == ".png"
        assert set(png_chunks(path.read_bytes())) == {b"IHDR", b"IDAT", b"IEND"}
    with store.session() as session:
        for stimulus in session.scalars(select(Stimulus)):
            rgb = load_rgb(store.png_path(study.public_id, stimulus.public_id))
            assert rgb.shape == (stimulus.image.height, stimulus.image.width, 3) == (32, 36, 3)
            lr, hr = make_lr(load_rgb(tmp_path / "hr" / f"{stimulus.image.name}.png"), 4)
            if stimulus.condition.name == REFERENCE:
                assert np.array_equal(rgb, hr)
            if stimulus.condition.name == NEAREST:
                assert np.array_equal(rgb, np.repeat(np.repeat(lr, 4, axis=0), 4, axis=1))


def test_a_network_method_is_precomputed_with_its_weights(store: Store, tmp_path: Path, tiny_weights_dir: Path) -> None:
    folder = image_folder(tmp_path / "hr", n_images=2, size=(30, 34))  # cropped to 28 × 32
    summary = create_study(store, "edsr", folder, ["bicubic", "edsr"], weights_dir=tiny_weights_dir)
    assert summary.conditions == ("bicubic", "edsr")
    with store.session() as session:
        stimuli = session.scalars(select(Stimulus)).all()
        shapes = {load_rgb(store.png_path(summary.public_id, s.public_id)).shape for s in stimuli}
    assert len(stimuli) == 4 and shapes == {(28, 32, 3)}


def test_missing_weights_give_the_clear_error_and_write_nothing(store: Store, tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match=r"edsr_srgan_x4\.safetensors"):
        create_study(store, "gan", image_folder(tmp_path / "hr"), ["bicubic", "edsr_srgan"], weights_dir=tmp_path)
    assert list_studies(store) == []
    assert not (store.data_dir / "stimuli").exists() or not any((store.data_dir / "stimuli").iterdir())


@pytest.mark.parametrize(
    ("methods", "n_images", "message"),
    [
        (["bicubic"], 1, "at least 2"),
        (["srcnn"], 2, "choose from"),
        (["bicubic", "bicubic"], 2, "named more than once: bicubic"),
    ],
)
def test_bad_studies_are_refused(store: Store, tmp_path: Path, methods: list[str], n_images: int, message: str) -> None:
    with pytest.raises(SurveyError, match=message):
        create_study(store, "bad", image_folder(tmp_path / "hr", n_images=n_images), methods)
    assert list_studies(store) == []


def test_study_names_are_unique(store: Store, study: StudySummary, tmp_path: Path) -> None:
    with pytest.raises(SurveyError, match="already exists"):
        create_study(store, "s1", image_folder(tmp_path / "other"), ["bicubic"])


@pytest.mark.parametrize(("n_images", "n_conditions"), [(2, 1), (2, 5), (3, 4), (7, 3)])
def test_playlist_never_shows_one_image_twice_in_a_row(n_images: int, n_conditions: int) -> None:
    images = [i for i in range(n_images) for _ in range(n_conditions)]
    for seed in range(50):
        order = playlist(images, random.Random(seed))
        assert sorted(order) == list(range(len(images)))
        assert all(images[a] != images[b] for a, b in zip(order, order[1:], strict=False))


def test_playlist_refuses_when_one_image_has_more_than_half_the_stimuli() -> None:
    with pytest.raises(ValueError, match="too many versions"):
        playlist([0, 0, 0, 1], random.Random(0))
    for seed in range(5):
        assert sorted(playlist([0, 0, 1], random.Random(seed))) == [0, 1, 2]
        assert playlist([0, 0, 1], random.Random(seed))[1] == 2  # the only valid order of images: 0, 1, 0


def test_each_rater_gets_a_stored_random_order(store: Store, study: StudySummary) -> None:
    orders = []
    for seed in range(4):
        state = start_rater(store, study.public_id, rng=random.Random(seed))
        with store.session() as session:
            rater = session.scalar(select(Rater).where(Rater.token == state.token))
            images = [a.stimulus.image_id for a in rater.assignments]
            orders.append([a.stimulus_id for a in rater.assignments])
        assert all(a != b for a, b in zip(images, images[1:], strict=False)) and len(images) == 9
    assert len({tuple(order) for order in orders}) > 1


def test_a_reload_resumes_at_the_same_stimulus(store: Store, study: StudySummary) -> None:
    state = start_rater(store, study.public_id, "laptop, glasses")
    state = submit_rating(store, study.public_id, state.token, state.stimulus or "", 4)
    again = progress(store, study.public_id, state.token)
    assert (again.stimulus, again.done, again.total) == (state.stimulus, 1, 9)


def test_ratings_survive_reopening_the_database(store: Store, study: StudySummary, tmp_path: Path) -> None:
    token = rate_all(store, study.public_id, score=5)
    store.engine.dispose()
    reopened = open_store(store.data_dir, database_url=store.engine.url.render_as_string(hide_password=False))
    assert count_ratings(reopened) == 9
    state = progress(reopened, study.public_id, token)
    assert state.finished and state.done == 9
    with reopened.session() as session:
        rater = session.scalar(select(Rater).where(Rater.token == token))
        assert rater is not None and rater.finished_at is not None


def test_a_double_submission_stores_the_first_score_only(store: Store, study: StudySummary) -> None:
    state = start_rater(store, study.public_id)
    first = submit_rating(store, study.public_id, state.token, state.stimulus or "", 2)
    second = submit_rating(store, study.public_id, state.token, state.stimulus or "", 5)
    assert first == second and first.done == 1
    with store.session() as session:
        assert session.scalars(select(Rating.score)).all() == [2]


def test_concurrent_raters_lose_nothing(store: Store, study: StudySummary) -> None:
    n_threads, errors = 6, []
    tokens = [start_rater(store, study.public_id).token for _ in range(n_threads)]

    def rate(token: str) -> None:
        try:
            state = progress(store, study.public_id, token)
            while not state.finished:
                for _ in range(2):  # every score sent twice, as by an impatient double click
                    submit_rating(store, study.public_id, token, state.stimulus or "", 1 + len(token) % 5)
                state = progress(store, study.public_id, token)
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=rate, args=(token,)) for token in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert count_ratings(store) == n_threads * 9


def test_raters_starting_at_once_never_exceed_the_cap(store: Store, tmp_path: Path) -> None:
    study = create_study(store, "capped", image_folder(tmp_path / "hr", n_images=2), ["bicubic"], max_raters=3)
    n_threads = 10
    barrier, started, refused = threading.Barrier(n_threads), [], []

    def start() -> None:
        barrier.wait()
        try:
            started.append(start_rater(store, study.public_id).token)
        except SurveyError as error:  # full, or (SQLite) the database busy with another start: try again later
            refused.append(error)

    threads = [threading.Thread(target=start) for _ in range(n_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(Rater)) == len(started) <= 3
    assert len(started) + len(refused) == n_threads
    while len(started) < 3:  # places left by busy refusals are still free
        started.append(start_rater(store, study.public_id).token)
    with pytest.raises(SurveyError, match="full"):
        start_rater(store, study.public_id)


def test_concurrent_identical_submissions_store_one(store: Store, study: StudySummary) -> None:
    state = start_rater(store, study.public_id)
    barrier, errors = threading.Barrier(4), []

    def submit() -> None:
        barrier.wait()
        try:
            submit_rating(store, study.public_id, state.token, state.stimulus or "", 3)
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and count_ratings(store) == 1


@pytest.mark.parametrize("score", [0, 6, 2.5, -1, "four", None, True, float("nan"), 4.0, "4", "٤"])
def test_a_score_off_the_scale_is_refused_and_not_stored(store: Store, study: StudySummary, score: object) -> None:
    state = start_rater(store, study.public_id)
    with pytest.raises(SurveyError, match="whole number"):
        submit_rating(store, study.public_id, state.token, state.stimulus or "", score)
    assert count_ratings(store) == 0


def test_an_unknown_or_unshown_stimulus_is_refused(store: Store, study: StudySummary) -> None:
    state = start_rater(store, study.public_id)
    with store.session() as session:
        unshown = session.scalar(
            select(Stimulus.public_id)
            .join(Assignment)
            .join(Rater)
            .where(Rater.token == state.token, Assignment.shown_at.is_(None))
        )
    for stimulus in ("no-such-stimulus", unshown):
        with pytest.raises(SurveyError, match="not one you were shown"):
            submit_rating(store, study.public_id, state.token, stimulus or "", 3)
    with pytest.raises(SurveyError, match="Unknown participant"):
        submit_rating(store, study.public_id, "not-a-token", state.stimulus or "", 3)
    assert count_ratings(store) == 0


def test_a_rater_token_reaches_only_its_own_ratings(store: Store, study: StudySummary) -> None:
    first = start_rater(store, study.public_id, rng=random.Random(1))
    rated = first.stimulus or ""
    first = submit_rating(store, study.public_id, first.token, rated, 5)
    second = start_rater(store, study.public_id, rng=random.Random(2))
    assert second.stimulus != rated  # the second rater was not shown the first one's rated stimulus yet
    with pytest.raises(SurveyError, match="not one you were shown"):
        submit_rating(store, study.public_id, second.token, rated, 1)
    second = submit_rating(store, study.public_id, second.token, second.stimulus or "", 2)
    assert (first.done, second.done) == (1, 1)  # each sees only their own count, never the other's scores
    with store.session() as session:
        scores = session.execute(select(Rater.token, Rating.score).join(Rating.rater)).all()
    assert sorted(scores) == sorted([(first.token, 5), (second.token, 2)])


def test_the_database_itself_refuses_a_rating_outside_the_raters_playlist(store: Store, study: StudySummary) -> None:
    state = start_rater(store, study.public_id)
    with pytest.raises(IntegrityError), store.session() as session, session.begin():
        rater_id = session.scalar(select(Rater.id).where(Rater.token == state.token))
        session.add(Rating(rater_id=rater_id, stimulus_id=10_000, score=3, response_ms=5))


def test_a_closed_study_accepts_no_ratings_and_no_raters(store: Store, study: StudySummary) -> None:
    state = start_rater(store, study.public_id)
    set_status(store, "s1", CLOSED)
    with pytest.raises(SurveyError, match="closed"):
        submit_rating(store, study.public_id, state.token, state.stimulus or "", 3)
    with pytest.raises(SurveyError, match="closed"):
        start_rater(store, study.public_id)
    assert count_ratings(store) == 0 and not progress(store, study.public_id, state.token).study_open


def test_response_times_are_measured_on_the_server(store: Store, study: StudySummary) -> None:
    rate_all(store, study.public_id)
    with store.session() as session:
        times = session.scalars(select(Rating.response_ms)).all()
    assert len(times) == 9 and all(0 <= t < 60_000 for t in times)
