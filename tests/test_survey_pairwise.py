"""Pair comparison (2AFC) statistics, and ACR intervals that count raters and images as random.

The coverage tests print their figures (run with ``-s`` to see them)."""

import itertools
import json
import math
import random
import sqlite3
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from sqlalchemy import select

from sr_app.images import load_rgb
from survey.answers import submit_choice, submit_rating
from survey.creation import create_study
from survey.db import ACR, LEFT, MAX_SCORE, MIN_SCORE, PC, RIGHT, SIDE_BY_SIDE, TIE, Choice, Rater, Stimulus, Store
from survey.errors import SurveyError
from survey.pairwise import (
    REGULARISATION,
    SCORE_COLUMNS,
    WINS_COLUMNS,
    analyse_pairs,
    bradley_terry,
    fit_scores,
    preference_counts,
    win_counts,
    win_rate,
)
from survey.plan import simulate_choices
from survey.raters import progress, start_rater
from survey.schedule import pair_schedule
from survey.stats import BOOT_COLUMNS, analyse, cluster_bootstrap, mos
from survey.store import DATABASE_FILE, open_store  # fmt: skip
from survey.studies import StudySummary, list_studies
from survey.ui.rate import rater_answer, rater_open, rater_start
from tests.survey_fixtures import blank_random_ids, image_folder, simulate_ratings
from tests.test_survey_rater_page import FORBIDDEN, OPAQUE

#: True Bradley–Terry log strengths, mean 0: from 27 % to 73 % preference between neighbours... up to 87 %.
STRENGTHS = {"bicubic": -1.0, "edsr": -0.3, "edsr_srgan": 0.4, "reference": 0.9}


def population_strengths(rater_sd: float, image_sd: float) -> np.ndarray:
    """The strengths that a Bradley–Terry fit of :data:`STRENGTHS` studies with rater × method and image × method
    effects (SDs ``rater_sd``, ``image_sd``) tends to with ever more raters and images, sorted by method: the fit to
    the population's preference probabilities E[1 / (1 + e^−(θ_A − θ_B + ε))], ε ~ N(0, 2 (rater_sd² + image_sd²))
    (Gauss–Hermite quadrature). The effects make single choices less predictable, so these lie a little closer
    together than :data:`STRENGTHS` (6 % with both SDs 0.3)."""
    theta = np.array([STRENGTHS[m] for m in sorted(STRENGTHS)])
    nodes, weights = np.polynomial.hermite_e.hermegauss(40)
    sd = math.sqrt(2 * (rater_sd**2 + image_sd**2))
    preference = 1 / (1 + np.exp(-(theta[:, None, None] - theta[None, :, None] + sd * nodes))) @ weights
    np.fill_diagonal(preference, 0)
    return fit_scores(preference / weights.sum(), alpha=0)


def choices_of(rows: list[tuple[int, str, str, str]], image: str = "x") -> pd.DataFrame:
    """A choices frame from (rater, left, right, choice) rows, all on ``image``."""
    return pd.DataFrame(rows, columns=["rater", "left", "right", "choice"]).assign(image=image)


def test_bradley_terry_recovers_the_order_and_the_strengths() -> None:
    choices = simulate_choices(np.random.default_rng(0), STRENGTHS, n_raters=30, n_images=10)
    table = bradley_terry(choices, n_resamples=200)
    assert list(table.columns) == SCORE_COLUMNS
    assert list(table.sort_values("score")["method"]) == sorted(STRENGTHS, key=STRENGTHS.get)
    truth = np.array([STRENGTHS[m] for m in table["method"]])
    assert table["score"].sum() == pytest.approx(0, abs=1e-9)
    assert np.abs(table["score"] - truth).max() < 0.15
    assert (table["ci95_low"] < table["score"]).all() and (table["score"] < table["ci95_high"]).all()
    assert (table["n_comparisons"] == 30 * 10 * 3).all()  # every method meets 3 others on 10 images per rater
    assert (table["bt_alpha"] == REGULARISATION).all()


@pytest.mark.slow
def test_bradley_terry_intervals_cover_the_true_strengths_about_95_percent_of_the_time() -> None:
    """120 simulated studies of 20 raters × 10 images × 6 pairs, 80 bootstrap resamples each; the plain
    Bradley–Terry model, where raters and images do not differ (the interval errs slightly wide there)."""
    rng = np.random.default_rng(1)
    truth = np.array([STRENGTHS[m] for m in sorted(STRENGTHS)])
    covered = []
    for study in range(120):
        choices = simulate_choices(rng, STRENGTHS, n_raters=20, n_images=10)
        table = bradley_terry(choices, n_resamples=80, seed=study)
        covered.append((table["ci95_low"] <= truth) & (truth <= table["ci95_high"]))
    coverage = float(np.mean(covered))
    print(f"Bradley–Terry 95 % intervals (raters and images alike) cover the true strengths: {coverage:.1%}")
    assert 0.90 <= coverage <= 0.98


@pytest.mark.slow
def test_bradley_terry_intervals_cover_the_strengths_when_raters_and_images_differ() -> None:
    """200 simulated studies of 20 raters × 10 images × 6 pairs with rater × method and image × method effects of
    SD 0.3 on the strengths, 100 bootstrap resamples each (60,000 fits; about 40 s on one core).

    Monte-Carlo error: 800 intervals, so a coverage of 95 % is measured to ±0.8 points (1 SD, binomial; the four
    intervals of a study are correlated, which changes that little). Measured: 95.5 %; the former interval, a
    bootstrap over raters alone, covered 88.4 % in the same simulation."""
    rng = np.random.default_rng(2)
    truth = population_strengths(rater_sd=0.3, image_sd=0.3)
    covered = []
    for study in range(200):
        choices = simulate_choices(rng, STRENGTHS, n_raters=20, n_images=10, rater_sd=0.3, image_sd=0.3)
        table = bradley_terry(choices, n_resamples=100, seed=study)
        covered.append((table["ci95_low"] <= truth) & (truth <= table["ci95_high"]))
    coverage = float(np.mean(covered))
    print(f"Bradley–Terry 95 % intervals (raters and images differ) cover the population strengths: {coverage:.1%}")
    assert 0.93 <= coverage <= 0.97


def test_the_bradley_terry_interval_widens_with_image_differences_and_needs_two_raters_and_two_images() -> None:
    rng = np.random.default_rng(3)
    alike = bradley_terry(simulate_choices(rng, STRENGTHS, 20, 10), n_resamples=100)
    varied = bradley_terry(simulate_choices(rng, STRENGTHS, 20, 10, image_sd=0.6), n_resamples=100)
    width = {name: t["ci95_high"] - t["ci95_low"] for name, t in (("alike", alike), ("varied", varied))}
    assert (width["varied"] > 1.3 * width["alike"]).all()
    choices = simulate_choices(rng, STRENGTHS, 20, 10)
    assert bradley_terry(choices, n_resamples=50).equals(bradley_terry(choices, n_resamples=50))  # seeded
    for single in (choices[choices["image"] == 0], choices[choices["rater"] == 0]):
        table = bradley_terry(single, n_resamples=20)
        assert table["score"].notna().all() and table["ci95_low"].isna().all() and table["ci95_high"].isna().all()


def test_regularisation_fits_each_method_as_if_alpha_n_w_minus_1_wins_were_moved() -> None:
    """choix's I-LSR fit with ``alpha`` > 0 matches each method's expected wins to its observed wins minus
    alpha · n · (w − 1), w = e^θ relative to the mean strength, n methods (balance of its Markov chain)."""
    rows = [(r, "a", "b", LEFT) for r in range(5)]  # a over b unanimously, 5 of 5
    rows += [(r, "c", "b", LEFT if r < 3 else RIGHT) for r in range(5)] + [(r, "a", "c", RIGHT) for r in range(2)]
    rows += [(r, "a", "c", LEFT) for r in range(2, 5)]
    choices = choices_of(rows)
    wins = preference_counts(choices, ["a", "b", "c"]).sum(axis=(0, 1))
    for alpha in (0.01, 0.5):
        theta = fit_scores(wins, alpha)
        w = np.exp(theta) / np.exp(theta).mean()
        expected = ((wins + wins.T) * w[:, None] / (w[:, None] + w[None, :])).sum(axis=1)
        assert expected - wins.sum(axis=1) == pytest.approx(-alpha * 3 * (w - 1), abs=1e-6)
    shift = fit_scores(wins, REGULARISATION) - fit_scores(wins, 0.0)
    assert 0.005 < np.abs(shift).max() < 0.05  # measurable, but far below the interval's width
    table = analyse_pairs(choices, alpha=0.5).scores.set_index("method")
    assert (table["bt_alpha"] == 0.5).all()
    assert table.loc["a", "score"] == pytest.approx(fit_scores(wins, 0.5)[0])


def test_a_tie_counts_half_a_win_for_each_side() -> None:
    choices = choices_of([(0, "a", "b", LEFT), (1, "b", "a", TIE), (2, "a", "b", TIE), (3, "b", "a", RIGHT)])
    # a: 1 + 1 wins and 2 ties of 4 → 3 of 4 preferences; Bradley–Terry: e^(θa − θb) = 3 / 1 (the tiny
    # regularisation pulls this in by about 1 % with so few choices).
    scores = bradley_terry(choices, n_resamples=20).set_index("method")["score"]
    assert scores["a"] - scores["b"] == pytest.approx(math.log(3), rel=0.02)
    assert win_rate(choices).loc["a", "b"] == 0.75 and win_rate(choices).loc["b", "a"] == 0.25
    row = win_counts(choices).iloc[0]
    assert (row["method_a"], row["method_b"], row["wins_a"], row["wins_b"], row["ties"]) == ("a", "b", 2, 0, 2)
    assert row["p_holm"] == pytest.approx(0.5)  # sign test: 2 of 2 non-tied choices, ties left out


def test_sign_tests_are_exact_binomial_and_holm_adjusted() -> None:
    rows = [(r, "a", "b", LEFT) for r in range(10)]  # a over b 10 of 10
    rows += [(r, "c", "b", LEFT if r < 6 else RIGHT) for r in range(10)]  # c over b 6 of 10
    rows += [(r, "a", "c", RIGHT if r < 5 else LEFT) for r in range(10)]  # 5 : 5
    table = win_counts(choices_of(rows))
    assert list(table.columns) == WINS_COLUMNS
    assert table[["method_a", "method_b", "wins_a", "wins_b", "ties"]].values.tolist() == [
        ["a", "b", 10, 0, 0], ["a", "c", 5, 5, 0], ["b", "c", 4, 6, 0],
    ]  # fmt: skip
    p = [sps.binomtest(10, 10).pvalue, 1.0, sps.binomtest(4, 10).pvalue]  # 2 / 1024, 1, 0.754
    assert table["p_holm"].tolist() == pytest.approx([3 * p[0], 1.0, min(2 * p[2], 1.0)])
    assert table["p_holm"].iloc[0] < 0.05 < table["p_holm"].iloc[2]


def test_a_method_that_wins_every_comparison_gets_a_large_finite_score() -> None:
    choices = pd.concat(
        [choices_of([(r, "best", other, LEFT) for r in range(5) for other in ("x", "y")], image)
         for image in ("p", "q")]
        + [choices_of([(r, "x", "y", LEFT if (r + i) % 2 else RIGHT) for r in range(5)], image)
           for i, image in enumerate(("p", "q"))]
    )  # fmt: skip
    table = bradley_terry(choices, n_resamples=50).set_index("method")
    assert np.isfinite(table.to_numpy(dtype=float)).all()
    assert table.loc["best", "score"] > table.loc["x", "score"] + 3


def test_win_rates_of_a_pair_add_up_to_one() -> None:
    rate = win_rate(simulate_choices(np.random.default_rng(2), STRENGTHS, n_raters=5, n_images=2))
    assert list(rate.index) == list(rate.columns) == sorted(STRENGTHS)
    assert np.isnan(np.diag(rate)).all()
    off_diagonal = ~np.eye(len(rate), dtype=bool)
    assert (rate + rate.T).to_numpy()[off_diagonal] == pytest.approx(1.0)
    assert rate.loc["reference", "bicubic"] > 0.75


def test_pair_analysis_of_no_choices_is_empty_tables() -> None:
    analysis = analyse_pairs(pd.DataFrame(columns=["rater", "image", "left", "right", "choice"]))
    assert analysis.scores.empty and analysis.wins.empty and analysis.win_rate.empty
    assert list(analysis.scores.columns) == SCORE_COLUMNS and list(analysis.wins.columns) == WINS_COLUMNS


def test_cluster_bootstrap_widens_with_rater_and_image_differences() -> None:
    rng = np.random.default_rng(3)
    alike = cluster_bootstrap(simulate_ratings(rng, bias_sd=0, image_sd=0))
    varied = cluster_bootstrap(simulate_ratings(rng, bias_sd=0.5, image_sd=0.5))
    width = {name: t["ci95_high_boot"] - t["ci95_low_boot"] for name, t in (("alike", alike), ("varied", varied))}
    assert (width["varied"] > 1.5 * width["alike"]).all()
    ratings = simulate_ratings(rng)
    assert cluster_bootstrap(ratings).equals(cluster_bootstrap(ratings))  # seeded
    by_method = analyse(ratings).by_method
    assert list(by_method.columns[-2:]) == BOOT_COLUMNS
    assert ((by_method["ci95_low_boot"] < by_method["mos"]) & (by_method["mos"] < by_method["ci95_high_boot"])).all()


@pytest.mark.slow
def test_the_cluster_bootstrap_covers_the_true_mean_where_the_pooled_t_interval_does_not() -> None:
    """200 simulated studies of 20 raters × 10 images with rater leniency and image difficulty (sd 0.3 each) and
    noise (sd 0.6), 200 bootstrap resamples each."""
    rng = np.random.default_rng(4)
    quality = {"low": 1.8, "mid": 3.0, "high": 3.7}
    sd = math.sqrt(0.3**2 + 0.3**2 + 0.6**2)
    edges = np.arange(MIN_SCORE, MAX_SCORE) + 0.5
    # The population mean score of round(q + N(0, sd)) clipped to 1–5: sum of k · P(score = k).
    true_mean = pd.Series(
        {m: np.arange(MIN_SCORE, MAX_SCORE + 1) @ np.diff(sps.norm.cdf(np.r_[-np.inf, edges, np.inf], q, sd))
         for m, q in quality.items()}
    )  # fmt: skip
    covered_boot, covered_t = [], []
    for study in range(200):
        ratings = simulate_ratings(rng, quality)
        table = mos(ratings).merge(cluster_bootstrap(ratings, n_resamples=200, seed=study)).set_index("method")
        truth = true_mean[table.index]
        covered_boot.append((table["ci95_low_boot"] <= truth) & (truth <= table["ci95_high_boot"]))
        covered_t.append((table["ci95_low"] <= truth) & (truth <= table["ci95_high"]))
    boot, pooled = float(np.mean(covered_boot)), float(np.mean(covered_t))
    print(f"95 % intervals of the MOS cover the true mean: cluster bootstrap {boot:.1%}, pooled Student t {pooled:.1%}")
    assert 0.91 <= boot <= 0.98
    assert pooled < 0.75


# --- Pair comparison studies: schedule, storage, resume ---

#: The ``studies`` table as the version before pair comparisons created it (SQLite).
OLD_STUDIES_TABLE = """CREATE TABLE studies (
    id INTEGER NOT NULL, public_id VARCHAR(32) NOT NULL, name VARCHAR(200) NOT NULL, instructions TEXT NOT NULL,
    status VARCHAR(8) NOT NULL CHECK (status IN ('open', 'closed')), created_at DATETIME NOT NULL,
    calibration_high VARCHAR(32) NOT NULL, calibration_low VARCHAR(32) NOT NULL,
    PRIMARY KEY (id), UNIQUE (public_id), UNIQUE (name))"""


@pytest.fixture()
def pc_study(store: Store, tmp_path: Path) -> StudySummary:
    """3 images × (bicubic, reference, nearest): 3 pairs per image, 9 trials per rater; ties allowed."""
    folder = image_folder(tmp_path / "hr")
    return create_study(store, "pc", folder, ["bicubic"], reference=True, anchors=True, protocol=PC, allow_tie=True)


def stimulus_conditions(store: Store) -> dict[str, tuple[str, str]]:
    """Stimulus token → (image, condition)."""
    with store.session() as session:
        return {s.public_id: (s.image.name, s.condition.name) for s in session.scalars(select(Stimulus))}


@pytest.mark.parametrize(("n_images", "n_conditions"), [(2, 2), (3, 3), (4, 5)])
def test_the_pair_schedule_is_complete_balanced_and_never_repeats_an_image(n_images: int, n_conditions: int) -> None:
    stimuli = [((image, condition), image) for image in range(n_images) for condition in range(n_conditions)]
    n_pairs = n_conditions * (n_conditions - 1) // 2
    schedules = [pair_schedule(stimuli, rater, random.Random(rater)) for rater in range(4)]
    for trials in schedules:
        assert len(trials) == n_images * n_pairs
        unordered = {(a[0], frozenset([a[1], b[1]])) for a, b in trials}
        assert len(unordered) == len(trials) and all(a[0] == b[0] for a, b in trials)  # every pair, one image each
        images = [a[0] for a, _ in trials]
        assert all(x != y for x, y in itertools.pairwise(images))
        first = Counter(a[1] for a, _ in trials)  # how often each condition is version A
        shown = Counter(c[1] for trial in trials for c in trial)
        assert all(abs(first[c] - shown[c] / 2) <= max(n_pairs, 1) / 2 + 0.5 for c in range(n_conditions))
    for one, following in itertools.pairwise(schedules):  # consecutive raters see each trial in opposite orders
        assert {(b, a) for a, b in one} == set(following)
    assert n_images * n_pairs < 4 or schedules[0] != schedules[2]  # same sides, another random order


def test_a_rater_compares_every_pair_once_resumes_and_finishes(store: Store, pc_study: StudySummary) -> None:
    assert pc_study.protocol == PC and pc_study.conditions == ("bicubic", "reference", "nearest")
    condition = stimulus_conditions(store)
    state = start_rater(store, pc_study.public_id, rng=random.Random(0))
    assert (state.done, state.total, state.allow_tie, state.presentation) == (0, 9, True, "flip")
    seen, answers = [], []
    while not state.finished:
        assert state.pair is not None and state.stimulus not in state.pair
        (image_a, a), (image_b, b) = condition[state.pair[0]], condition[state.pair[1]]
        assert image_a == image_b and a != b
        seen.append((image_a, frozenset([a, b])))
        again = progress(store, pc_study.public_id, state.token)  # a reload shows the same pair
        assert (again.stimulus, again.pair, again.done) == (state.stimulus, state.pair, state.done)
        answer = TIE if {a, b} == {"bicubic", "nearest"} else (LEFT if a == "reference" else RIGHT)
        answers.append(answer)
        state = submit_choice(store, pc_study.public_id, state.token, state.stimulus or "", answer)
    assert state.done == 9 and len(set(seen)) == 9
    with store.session() as session:
        rater = session.scalar(select(Rater).where(Rater.token == state.token))
        assert rater is not None and rater.finished_at is not None
        assert session.scalars(select(Choice.choice).order_by(Choice.position)).all() == answers


def test_a_repeated_choice_is_ignored_and_concurrent_ones_store_one(store: Store, pc_study: StudySummary) -> None:
    state = start_rater(store, pc_study.public_id)
    first = submit_choice(store, pc_study.public_id, state.token, state.stimulus or "", LEFT)
    assert submit_choice(store, pc_study.public_id, state.token, state.stimulus or "", RIGHT) == first
    barrier, errors = threading.Barrier(4), []

    def choose() -> None:
        barrier.wait()
        try:
            submit_choice(store, pc_study.public_id, first.token, first.stimulus or "", RIGHT)
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=choose) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with store.session() as session:
        stored = session.execute(select(Choice.position, Choice.choice).order_by(Choice.position)).all()
    assert errors == [] and [tuple(row) for row in stored] == [(0, LEFT), (1, RIGHT)]


def test_bad_choices_are_refused_and_not_stored(store: Store, pc_study: StudySummary, tmp_path: Path) -> None:
    state = start_rater(store, pc_study.public_id)
    for choice in ("A", "", None, 1):
        with pytest.raises(SurveyError, match="must be one of left, right, tie"):
            submit_choice(store, pc_study.public_id, state.token, state.stimulus or "", choice)
    with pytest.raises(SurveyError, match="not one you were shown"):
        submit_choice(store, pc_study.public_id, state.token, "no-such-trial", LEFT)
    with pytest.raises(SurveyError, match="asks for a choice"):
        submit_rating(store, pc_study.public_id, state.token, state.stimulus or "", 3)
    no_ties = create_study(store, "no-ties", image_folder(tmp_path / "hr2"), ["bicubic"], anchors=True, protocol=PC)
    other = start_rater(store, no_ties.public_id)
    assert not other.allow_tie
    with pytest.raises(SurveyError, match="must be one of left, right;"):
        submit_choice(store, no_ties.public_id, other.token, other.stimulus or "", TIE)
    with store.session() as session:
        assert session.query(Choice).count() == 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"protocol": "abx"}, "protocol must be one of acr, pc"),
        ({"protocol": PC, "presentation": "overlay"}, "presentation must be one of flip, side-by-side"),
        ({"allow_tie": True}, "options of pair comparison"),
        ({"protocol": PC, "anchors": False}, "at least 2 conditions"),
    ],
)
def test_bad_pair_comparison_options_are_refused(
    store: Store, tmp_path: Path, options: dict[str, object], message: str
) -> None:
    options = {"anchors": True, **options}
    with pytest.raises(SurveyError, match=message):
        create_study(store, "bad", image_folder(tmp_path / "hr"), ["bicubic"], **options)
    assert list_studies(store) == []


def test_side_by_side_is_stored_with_the_study(store: Store, tmp_path: Path) -> None:
    folder = image_folder(tmp_path / "hr")
    study = create_study(store, "sbs", folder, ["bicubic"], anchors=True, protocol=PC, presentation=SIDE_BY_SIDE)
    state = start_rater(store, study.public_id)
    assert state.presentation == SIDE_BY_SIDE and state.total == 3


def test_a_database_from_before_pair_comparisons_keeps_working(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    with sqlite3.connect(data / DATABASE_FILE) as connection:
        connection.execute(OLD_STUDIES_TABLE)
        connection.execute(
            "INSERT INTO studies VALUES (1, 'old-id', 'old', 'Rate these.', 'open', '2024-01-01 00:00:00', 'h', 'l')"
        )
    store = open_store(data, database_url=f"sqlite:///{data / DATABASE_FILE}")
    (old,) = list_studies(store)
    assert (old.name, old.protocol) == ("old", ACR)
    new = create_study(store, "new", image_folder(tmp_path / "hr"), ["bicubic"], anchors=True, protocol=PC)
    assert new.protocol == PC and [s.protocol for s in list_studies(store)] == [ACR, PC]
    store.engine.dispose()
    assert [s.protocol for s in list_studies(open_store(data, database_url=str(store.engine.url)))] == [ACR, PC]


def test_pair_pages_never_name_a_method_and_show_two_versions_of_one_size(store: Store, pc_study: StudySummary) -> None:
    pages = [rater_open(store, pc_study.public_id)]
    assert pages[0].view == "welcome" and pages[0].examples is None and pages[0].protocol == PC
    pages.append(rater_start(store, pc_study.public_id, self_report="phone"))
    token = pages[-1].token
    while pages[-1].view == "choose":
        pages.append(rater_answer(store, pc_study.public_id, token, pages[-1].item, LEFT))
    assert pages[-1].view == "done" and len(pages) == 2 + 9
    for page in pages:
        assert not FORBIDDEN.search(blank_random_ids(json.dumps(page.__dict__))), page
    for page in pages[1:-1]:
        assert len(page.images) == 2 and page.allow_tie and all(OPAQUE.fullmatch(name) for name in page.images)
        version_a, version_b = (load_rgb(store.png_path(pc_study.public_id, name)) for name in page.images)
        assert version_a.shape == version_b.shape == (32, 36, 3)
    with pytest.raises(SurveyError, match="must be one of"):
        rater_answer(store, pc_study.public_id, token, pages[1].item, "A")
