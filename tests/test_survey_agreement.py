"""Agreement figures: Krippendorff's alpha of ACR scores, Kendall & Babington Smith's coefficients of pair
comparisons, on hand-computable cases."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from survey.agreement import agreement, agreement_by_image, consistence, krippendorff_alpha
from survey.db import LEFT, RIGHT, TIE
from survey.plan import Assumptions, simulate_choices, simulate_ratings


def ratings_of(scores: dict[int, list[float]]) -> pd.DataFrame:
    """A ratings frame from rater → scores of the presentations u0, u1, … (NaN: not scored); one method."""
    rows = [(rater, f"u{unit}", "m", score) for rater, row in scores.items() for unit, score in enumerate(row)]
    return pd.DataFrame(rows, columns=["rater", "image", "method", "score"]).dropna()


def tournament(order: list[tuple[str, str]], rater: int = 0, image: str = "x") -> pd.DataFrame:
    """A choices frame: ``rater`` chose the first of each (winner, loser) on ``image``, shown on alternate sides."""
    rows = [
        (rater, image, winner, loser, LEFT) if k % 2 else (rater, image, loser, winner, RIGHT)
        for k, (winner, loser) in enumerate(order)
    ]
    return pd.DataFrame(rows, columns=["rater", "image", "left", "right", "choice"])


def test_krippendorff_alpha_is_1_for_perfect_agreement_and_4_9_in_a_small_case() -> None:
    assert krippendorff_alpha(ratings_of({0: [1, 3, 5, 2], 1: [1, 3, 5, 2], 2: [1, 3, 5, np.nan]})) == 1.0
    # Two raters, units (1, 1), (2, 2), (1, 2): n1 = n2 = 3 pairable values, one distance δ² = 9 between 1 and 2;
    # observed disagreement (1 + 1) · 9 / 6 = 3, expected 2 · 3 · 3 · 9 / (6 · 5) = 5.4, alpha = 1 − 3 / 5.4 = 4/9.
    assert krippendorff_alpha(ratings_of({0: [1, 2, 1], 1: [1, 2, 2]})) == pytest.approx(4 / 9)


def test_krippendorff_alpha_reproduces_krippendorffs_published_ordinal_example() -> None:
    """Krippendorff (2011), "Computing Krippendorff's alpha-reliability": 4 observers × 12 units, ordinal 0.815."""
    nan = np.nan
    data = {
        0: [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
        1: [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
        2: [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
        3: [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
    }
    assert krippendorff_alpha(ratings_of(data)) == pytest.approx(0.8154, abs=1e-4)


def test_krippendorff_alpha_of_simulated_raters_falls_with_noise_and_is_nan_without_pairs() -> None:
    rng = np.random.default_rng(0)
    quality = {"a": 1.8, "b": 3.0, "c": 4.2}
    quiet = krippendorff_alpha(simulate_ratings(rng, quality, 10, 5, Assumptions(0.1, 0.3, 0.2)))
    noisy = krippendorff_alpha(simulate_ratings(rng, quality, 10, 5, Assumptions(0.3, 0.3, 1.5)))
    assert 0.8 < quiet <= 1 and 0 < noisy < 0.6
    assert math.isnan(krippendorff_alpha(ratings_of({0: [1, 2, 3]})))  # one rater: nothing to compare
    assert math.isnan(krippendorff_alpha(ratings_of({0: [4, 4], 1: [4, 4]})))  # no variation to agree on


def test_consistence_counts_circular_triads() -> None:
    ordered = tournament([("a", "b"), ("b", "c"), ("a", "c")], rater=0)  # a > b > c: no triad
    circular = tournament([("a", "b"), ("b", "c"), ("c", "a")], rater=1)  # a > b > c > a: one triad, the most
    table = consistence(pd.concat([ordered, circular]))
    assert table["circular_triads"].tolist() == [0, 1] and table["consistence"].tolist() == [1, 0]
    # 4 methods: a beats b, d; b beats c, d; c beats a; d beats c: wins (2, 2, 1, 1), d = 4·3·7/12 − 10/2 = 2 triads,
    # the most with 4 (n³ − 4n) / 24 = 2, so ζ = 0; on a second image the order a > b > c > d (ζ = 1).
    four = [("a", "b"), ("c", "a"), ("a", "d"), ("b", "c"), ("b", "d"), ("d", "c")]
    chain = [(x, y) for x, y in itertools.combinations("abcd", 2)]
    table = consistence(pd.concat([tournament(four, image="p"), tournament(chain, image="q")]))
    assert table.loc[0].tolist() == [2, 2, 0.5]


def test_consistence_leaves_out_incomplete_tournaments_and_counts_ties_half() -> None:
    partial = tournament([("a", "b"), ("b", "c")], rater=0)  # a–c never compared
    tied = tournament([("a", "b"), ("b", "c"), ("a", "c")], rater=1)
    tied.loc[2, "choice"] = TIE  # a vs c: no difference → wins (1.5, 1, 0.5), d = 2.5 − 3.5 / 2 = 0.75
    table = consistence(pd.concat([partial, tied]))
    assert list(table.index) == [1]
    assert table.loc[1, "circular_triads"] == pytest.approx(0.75) and table.loc[1, "consistence"] == 0.25


def test_coefficient_of_agreement_from_full_agreement_to_its_minimum() -> None:
    order = [("a", "b"), ("b", "c"), ("a", "c")]
    same = pd.concat([tournament(order, rater=r) for r in range(3)])
    assert agreement(same) == 1.0
    # One pair, 4 raters, 3 prefer a: C(3, 2) + C(1, 2) = 3 agreeing pairs of raters of C(4, 2) = 6, u = 0.
    split = pd.concat([tournament([("a", "b") if r < 3 else ("b", "a")], rater=r) for r in range(4)])
    assert agreement(split) == 0.0
    halves = pd.concat([tournament([("a", "b") if r < 2 else ("b", "a")], rater=r) for r in range(4)])
    assert agreement(halves) == pytest.approx(-1 / 3)  # the minimum for an even number of raters, −1/(m − 1)
    by_image = agreement_by_image(pd.concat([same, split.assign(image="y")]))
    assert by_image.to_dict("index") == {"x": {"n_raters": 3, "agreement": 1.0}, "y": {"n_raters": 4, "agreement": 0.0}}
    # Over both images: (9 + 3) agreeing of (9 + 6) possible pairs of raters.
    assert agreement(pd.concat([same, split.assign(image="y")])) == pytest.approx(2 * 12 / 15 - 1)


def test_simulated_raters_agree_more_when_the_methods_differ_more() -> None:
    rng = np.random.default_rng(1)
    close = simulate_choices(rng, {"a": 0.0, "b": 0.2, "c": 0.4}, n_raters=10, n_images=5)
    apart = simulate_choices(rng, {"a": -2.0, "b": 0.0, "c": 2.0}, n_raters=10, n_images=5)
    assert agreement(close) < 0.2 < 0.5 < agreement(apart)
    assert consistence(apart)["consistence"].mean() > consistence(close)["consistence"].mean()
    assert (consistence(apart)["n_images"] == 5).all()
