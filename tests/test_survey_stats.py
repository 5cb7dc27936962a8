import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from survey.db import MAX_SCORE, MIN_SCORE
from survey.stats import (
    MIN_MEDIAN_RESPONSE_MS,
    MOS_COLUMNS,
    WILCOXON_COLUMNS,
    analyse,
    dmos,
    holm,
    mos,
    paired_wilcoxon,
    screen_raters,
    speed_check,
)
from tests.survey_fixtures import TRUE_QUALITY, random_clicker, simulate_ratings


def test_mos_matches_hand_computation() -> None:
    ratings = pd.DataFrame({"rater": [0, 1, 2, 3, 4], "image": "a", "method": "m", "score": [1, 2, 3, 4, 5]})
    row = mos(ratings).iloc[0]
    half = 2.7764451 * math.sqrt(2.5) / math.sqrt(5)  # t(0.975, 4) · s / √n
    assert list(mos(ratings).columns) == ["method", *MOS_COLUMNS]
    assert (row["mos"], row["n_ratings"], row["n_raters"]) == (3, 5, 5)
    assert row["std"] == pytest.approx(math.sqrt(2.5))
    assert (row["ci95_low"], row["ci95_high"]) == pytest.approx((3 - half, 3 + half))


def test_mos_recovers_the_order_of_true_quality() -> None:
    ratings = simulate_ratings(np.random.default_rng(1))
    table = mos(ratings).sort_values("mos")
    assert list(table["method"]) == sorted(TRUE_QUALITY, key=TRUE_QUALITY.get)
    assert (table["n_raters"] == 20).all() and (table["n_ratings"] == 200).all()
    by_image = mos(ratings, by=("image", "method"))
    assert len(by_image) == 10 * len(TRUE_QUALITY) and (by_image["n_ratings"] == 20).all()


def test_95_percent_interval_covers_the_true_mean_95_percent_of_the_time() -> None:
    """2000 simulated studies of 20 raters (rater bias + noise, rounded and clipped to 1–5), 3 methods each."""
    rng = np.random.default_rng(2)
    n_studies, n_raters, sd = 2000, 20, math.hypot(0.4, 0.7)
    quality = {"low": 1.6, "mid": 3.2, "high": 4.4}
    latent = np.array(list(quality.values())) + rng.normal(0, sd, (n_studies, n_raters, len(quality)))
    scores = np.clip(np.rint(latent), MIN_SCORE, MAX_SCORE)
    index = pd.MultiIndex.from_product([range(n_studies), range(n_raters), list(quality)])
    ratings = pd.DataFrame({"score": scores.ravel()}, index=index).rename_axis(["study", "rater", "method"])
    table = mos(ratings.reset_index(), by=("study", "method")).set_index("method")
    # Exact expected score of round(q + N(0, sd)) clipped to 1–5: sum of k · P(score = k).
    edges = np.arange(MIN_SCORE, MAX_SCORE) + 0.5
    for method, q in quality.items():
        cdf = np.concatenate([[0], sps.norm.cdf(edges, q, sd), [1]])
        true_mean = float(np.arange(MIN_SCORE, MAX_SCORE + 1) @ np.diff(cdf))
        rows = table.loc[method]
        coverage = ((rows["ci95_low"] <= true_mean) & (true_mean <= rows["ci95_high"])).mean()
        assert 0.93 <= coverage <= 0.97, (method, coverage)


def test_wilcoxon_finds_a_half_point_difference_with_20_raters() -> None:
    ratings = simulate_ratings(np.random.default_rng(3), {"a": 3.0, "b": 3.5}, n_raters=20)
    row = paired_wilcoxon(ratings).iloc[0]
    assert list(paired_wilcoxon(ratings).columns) == WILCOXON_COLUMNS
    assert (row["method_a"], row["method_b"], row["n_pairs"]) == ("a", "b", 200)
    assert row["mean_diff"] < 0 and row["p_value"] < 0.05


def test_wilcoxon_false_positive_rate_is_near_5_percent_without_a_difference() -> None:
    rng = np.random.default_rng(4)
    p_values = [
        paired_wilcoxon(simulate_ratings(rng, {"a": 3.0, "b": 3.0}, n_raters=20, n_images=2))["p_value"].iloc[0]
        for _ in range(200)
    ]
    assert np.mean(np.array(p_values) < 0.05) <= 0.10


def test_wilcoxon_of_identical_scores_is_not_significant() -> None:
    ratings = pd.DataFrame({"rater": [0, 0, 1, 1], "image": "x", "method": ["a", "b"] * 2, "score": [3, 3, 4, 4]})
    assert paired_wilcoxon(ratings)["p_value"].iloc[0] == 1.0


def test_a_random_clicker_is_flagged_and_honest_raters_are_kept() -> None:
    rng = np.random.default_rng(5)
    honest = simulate_ratings(rng)
    ratings = pd.concat([honest, random_clicker(rng, honest, rater=99)], ignore_index=True)
    screening = screen_raters(ratings)
    assert screening.loc[99, "flagged"] and screening.loc[99, "r_mos"] < 0.5
    assert screening.drop(index=99)["flagged"].sum() <= 1
    assert (screening["n_ratings"] == 50).all()


def test_a_consistently_lenient_rater_is_kept() -> None:
    """Outliers all on one side (|P − Q| / (P + Q) ≥ 0.3) are a bias, not unreliability, for BT.500."""
    rng = np.random.default_rng(6)
    ratings = simulate_ratings(rng, bias_sd=0, noise_sd=0.3)
    lenient = ratings["rater"] == 0
    ratings.loc[lenient, "score"] = np.minimum(ratings.loc[lenient, "score"] + 1, MAX_SCORE)
    row = screen_raters(ratings).loc[0]
    assert row["p_count"] > 0 and row["q_count"] == 0
    assert not row["bt500_reject"] and not row["flagged"]


def test_constant_scores_fail_the_correlation_rule() -> None:
    rng = np.random.default_rng(7)
    ratings = simulate_ratings(rng, n_raters=10)
    ratings.loc[ratings["rater"] == 3, "score"] = 3
    screening = screen_raters(ratings)
    assert math.isnan(screening.loc[3, "r_mos"]) and screening.loc[3, "corr_reject"]


def test_a_rater_is_too_fast_by_their_median_response_time() -> None:
    """Rater 1 clicks through with two long pauses (the mean, 2.3 s, would hide it); rater 2 takes a person's time."""
    answers = pd.DataFrame({"rater": [1] * 5 + [2] * 3, "response_ms": [300, 350, 400, 5000, 5500, 2500, 900, 4000]})
    table = speed_check(answers)
    assert table["median_response_ms"].to_dict() == {1: 400, 2: 2500}
    assert table["too_fast"].to_dict() == {1: True, 2: False}
    assert table["reason"].to_dict() == {1: f"too fast: median 400 ms < {MIN_MEDIAN_RESPONSE_MS} ms", 2: ""}
    assert not speed_check(answers, min_median_ms=400)["too_fast"].any()  # below, not at, the threshold
    assert speed_check(answers.iloc[:0]).empty


def test_dmos_is_score_minus_reference_plus_five() -> None:
    ratings = pd.DataFrame(
        {
            "rater": [0, 0, 1, 1],
            "image": "x",
            "method": ["reference", "bicubic"] * 2,
            "score": [5, 2, 4, 3],
        }
    )
    table = dmos(ratings)
    assert list(table["method"]) == ["bicubic"]
    assert table["dmos"].iloc[0] == pytest.approx(((2 - 5 + 5) + (3 - 4 + 5)) / 2)
    assert dmos(ratings[ratings["method"] != "reference"]).empty


def test_analyse_bundles_every_table() -> None:
    result = analyse(simulate_ratings(np.random.default_rng(8), n_raters=5, n_images=3))
    assert len(result.by_method) == 5 and len(result.by_image) == 15
    assert len(result.dmos) == 4 and len(result.wilcoxon) == 10


def test_holm_adjustment() -> None:
    assert holm(np.array([0.01, 0.04, 0.03])) == pytest.approx([0.03, 0.06, 0.06])
    assert holm(np.array([0.5, 0.9])) == pytest.approx([1.0, 1.0])
    assert holm(np.array([])).size == 0
