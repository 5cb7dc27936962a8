"""Pair comparison (2AFC) statistics, and ACR intervals that count raters and images as random.

The coverage tests print their figures (run with ``-s`` to see them)."""

import itertools
import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from survey.db import LEFT, MAX_SCORE, MIN_SCORE, RIGHT, TIE
from survey.pairwise import SCORE_COLUMNS, WINS_COLUMNS, analyse_pairs, bradley_terry, win_counts, win_rate
from survey.stats import BOOT_COLUMNS, analyse, cluster_bootstrap, mos
from tests.survey_fixtures import simulate_ratings

#: True Bradley–Terry log strengths, mean 0: from 27 % to 73 % preference between neighbours... up to 87 %.
STRENGTHS = {"bicubic": -1.0, "edsr": -0.3, "edsr_srgan": 0.4, "reference": 0.9}


def simulate_choices(
    rng: np.random.Generator, strengths: Mapping[str, float] = STRENGTHS, n_raters: int = 20, n_images: int = 10
) -> pd.DataFrame:
    """Every rater compares every pair of methods on every image once, sides at random; version A is chosen with
    the Bradley–Terry probability 1 / (1 + e^(θ_B − θ_A))."""
    names, theta = np.array(list(strengths)), np.array(list(strengths.values()))
    pairs = np.array(list(itertools.combinations(range(len(names)), 2)))
    grid = np.meshgrid(np.arange(n_raters), np.arange(n_images), np.arange(len(pairs)), indexing="ij")
    rater, image, pair = (axis.ravel() for axis in grid)
    first, second = pairs[pair].T
    swap = rng.random(rater.size) < 0.5
    left, right = np.where(swap, second, first), np.where(swap, first, second)
    a_wins = rng.random(rater.size) < 1 / (1 + np.exp(theta[right] - theta[left]))
    return pd.DataFrame(
        {"rater": rater, "image": image, "left": names[left], "right": names[right],
         "choice": np.where(a_wins, LEFT, RIGHT)}
    )  # fmt: skip


def choices_of(rows: list[tuple[int, str, str, str]]) -> pd.DataFrame:
    """A choices frame from (rater, left, right, choice) rows, all on one image."""
    return pd.DataFrame(rows, columns=["rater", "left", "right", "choice"]).assign(image="x")


def test_bradley_terry_recovers_the_order_and_the_strengths() -> None:
    choices = simulate_choices(np.random.default_rng(0), n_raters=30)
    table = bradley_terry(choices, n_resamples=200)
    assert list(table.columns) == SCORE_COLUMNS
    assert list(table.sort_values("score")["method"]) == sorted(STRENGTHS, key=STRENGTHS.get)
    truth = np.array([STRENGTHS[m] for m in table["method"]])
    assert table["score"].sum() == pytest.approx(0, abs=1e-9)
    assert np.abs(table["score"] - truth).max() < 0.15
    assert (table["ci95_low"] < table["score"]).all() and (table["score"] < table["ci95_high"]).all()
    assert (table["n_comparisons"] == 30 * 10 * 3).all()  # every method meets 3 others on 10 images per rater


@pytest.mark.slow
def test_bradley_terry_intervals_cover_the_true_strengths_about_95_percent_of_the_time() -> None:
    """150 simulated studies of 20 raters × 10 images × 6 pairs, 100 bootstrap resamples each."""
    rng = np.random.default_rng(1)
    truth = np.array([STRENGTHS[m] for m in sorted(STRENGTHS)])
    covered = []
    for study in range(150):
        table = bradley_terry(simulate_choices(rng), n_resamples=100, seed=study)
        covered.append((table["ci95_low"] <= truth) & (truth <= table["ci95_high"]))
    coverage = float(np.mean(covered))
    print(f"Bradley–Terry 95 % intervals (bootstrap over raters) cover the true strengths: {coverage:.1%}")
    assert 0.90 <= coverage <= 0.98


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
    choices = choices_of([(r, "best", other, LEFT) for r in range(5) for other in ("x", "y")])
    choices = pd.concat([choices, choices_of([(r, "x", "y", LEFT if r % 2 else RIGHT) for r in range(5)])])
    table = bradley_terry(choices, n_resamples=50).set_index("method")
    assert np.isfinite(table.to_numpy(dtype=float)).all()
    assert table.loc["best", "score"] > table.loc["x", "score"] + 3


def test_win_rates_of_a_pair_add_up_to_one() -> None:
    rate = win_rate(simulate_choices(np.random.default_rng(2), n_raters=5, n_images=2))
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
