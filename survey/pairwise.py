"""Statistics of pair comparisons (2AFC): pure functions on pandas DataFrames.

A choices frame has one row per answer with the columns ``rater``, ``image``, ``left`` and ``right`` (the conditions
shown as version A, on the left or first, and version B, on the right or second) and ``choice``: :data:`LEFT`,
:data:`RIGHT` or :data:`TIE` ("no difference", where the study allows it); other columns are ignored.

Ties count as half a win for each side in the Bradley–Terry fit and the win rates, and are left out of the sign
tests (they say nothing about which side is better).

- :func:`win_counts`: wins and ties per pair of methods, with two-sided sign tests and Holm-adjusted p-values.
- :func:`win_rate`: the method × method matrix of how often the row method was preferred to the column method.
- :func:`bradley_terry`: Bradley–Terry scale values per method (fitted by ``choix``) with 95 % intervals from a
  two-way cluster bootstrap over raters and images.
- :func:`rater_agreement`: how often each rater chose the method that all raters together prefer.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import choix
import numpy as np
import pandas as pd
from scipy import stats

from survey.db import LEFT, RIGHT, TIE
from survey.stats import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, CONFIDENCE, cluster_draws, holm

SCORE_COLUMNS = ["method", "score", "ci95_low", "ci95_high", "n_comparisons", "bt_alpha"]
WINS_COLUMNS = ["method_a", "method_b", "wins_a", "wins_b", "ties", "p_holm"]
#: The default regularisation ``alpha`` of the Bradley–Terry fit (see :func:`fit_scores`): it keeps the score of a
#: method that won every comparison finite, and moves the others by up to a few hundredths in small studies.
REGULARISATION = 0.01
#: The bootstrap interval counts the variance between raters (or between images) only where an F test at this level
#: finds it (the usual level for pooling variance components: pool only what is plainly absent).
POOLING_LEVEL = 0.25


def methods_of(choices: pd.DataFrame) -> list[str]:
    """Every method shown in ``choices``, sorted by name."""
    return sorted(set(choices["left"]) | set(choices["right"]))


def preference_counts(choices: pd.DataFrame, methods: list[str]) -> np.ndarray:
    """``wins[r, k, i, j]``: how often rater ``r`` preferred ``methods[i]`` to ``methods[j]`` on image ``k`` (raters
    and images in sorted order), a tie counting half for each side."""
    _, rater = np.unique(choices["rater"].to_numpy(), return_inverse=True)
    _, image = np.unique(choices["image"].to_numpy(), return_inverse=True)
    index = {method: i for i, method in enumerate(methods)}
    left, right = (choices[side].map(index).to_numpy(dtype=int) for side in ("left", "right"))
    choice = choices["choice"].to_numpy()
    wins = np.zeros((rater.max(initial=-1) + 1, image.max(initial=-1) + 1, len(methods), len(methods)))
    np.add.at(wins, (rater, image, left, right), np.select([choice == LEFT, choice == TIE], [1.0, 0.5], 0.0))
    np.add.at(wins, (rater, image, right, left), np.select([choice == RIGHT, choice == TIE], [1.0, 0.5], 0.0))
    return wins


def win_counts(choices: pd.DataFrame) -> pd.DataFrame:
    """Wins and ties for every pair of methods that was compared, with a two-sided sign test.

    ``wins_a`` counts the choices of ``method_a`` over ``method_b`` (in either position), ``ties`` the "no
    difference" answers. The p-value is the exact two-sided binomial test of ``wins_a`` out of ``wins_a + wins_b``
    against 1/2 (1 without any win), adjusted for testing every pair (Holm–Bonferroni): ``p_holm`` < 0.05 says one
    method is preferred with a family-wise error rate of 5 %. Columns: :data:`WINS_COLUMNS`, pairs in name order.
    """
    methods = methods_of(choices)
    ties = choices["choice"] == TIE
    winner = choices["left"].where(choices["choice"] == LEFT, choices["right"])
    pair = [tuple(sorted(p)) for p in zip(choices["left"], choices["right"], strict=True)]
    counted = pd.DataFrame({"pair": pair, "winner": winner.where(~ties), "tie": ties})
    rows = []
    for a, b in itertools.combinations(methods, 2):
        shown = counted[counted["pair"] == (a, b)]
        if shown.empty:
            continue
        wins_a, wins_b = int((shown["winner"] == a).sum()), int((shown["winner"] == b).sum())
        p_value = stats.binomtest(wins_a, wins_a + wins_b).pvalue if wins_a + wins_b else 1.0
        rows.append((a, b, wins_a, wins_b, int(shown["tie"].sum()), p_value))
    table = pd.DataFrame(rows, columns=[*WINS_COLUMNS[:-1], "p_value"])
    table["p_holm"] = holm(table.pop("p_value").to_numpy(dtype=float))
    return table


def win_rate(choices: pd.DataFrame) -> pd.DataFrame:
    """How often the row method was preferred to the column method, in [0, 1] (ties half), over all raters and
    images; NaN on the diagonal and for pairs never compared. Index and columns: the methods, sorted by name."""
    methods = methods_of(choices)
    wins = preference_counts(choices, methods).sum(axis=(0, 1))
    with np.errstate(invalid="ignore"):
        rate = wins / (wins + wins.T)
    return pd.DataFrame(rate, index=pd.Index(methods, name="method"), columns=methods)


def fit_scores(wins: np.ndarray, alpha: float = REGULARISATION, initial: np.ndarray | None = None) -> np.ndarray:
    """Bradley–Terry scale values (natural-log strengths, mean 0) of a methods × methods win matrix, by choix's
    I-LSR fit with regularisation ``alpha`` (≥ 0); ``initial`` values start the iteration.

    ``alpha`` 0 is the maximum-likelihood fit, which does not exist when a method won (or lost) every comparison.
    With ``alpha`` > 0 the fit matches, for every method i, its expected number of wins to its observed wins minus
    ``alpha`` · n · (w_i − 1), n being the number of methods and w_i = e^θ_i / mean(e^θ): a method stronger than
    the average (w_i > 1) is fitted as if it had lost a fraction of a win more, a weaker one as if it had won it, so
    scores are pulled towards each other and a method that won everything gets a large finite score. The default
    0.01 moves a few hundredths of a win per method: in simulated studies of 4 methods it moved the scores by less
    than 0.001 with 20 raters × 10 images, but by up to 0.08 with 5 raters × 2 images (10 comparisons per pair),
    where a pair decided unanimously leaves the fit to the few other wins.
    """
    return choix.ilsr_pairwise_dense(wins, alpha=alpha, initial_params=initial)


def bootstrap_half_width(wins: np.ndarray, scores: np.ndarray, n_resamples: int, seed: int, alpha: float) -> np.ndarray:
    """Half the width of each method's 95 % interval around ``scores``, from a two-way cluster bootstrap of
    ``wins`` (raters × images × methods × methods, :func:`preference_counts`); NaN with fewer than 2 raters or
    2 images.

    The raters and the images are drawn with replacement (:func:`survey.stats.cluster_draws`) and the scores refitted
    three times per resample: with the drawn raters and every image once, with every rater once and the drawn images,
    and with both drawn. These give mean squares of the scores over raters, over images and over rater × image cells
    (the scatter of single choices, which dominates in pair comparisons and is part of the other two as well).
    Resampling raters and images together counts that scatter about three times over: the plain two-way
    ("pigeonhole") interval covered 99 % instead of 95 % where raters and images do not differ. Here the variance is
    the cell mean square plus the rater and the image components (each mean square less the cell one), a component
    only where an F test at :data:`POOLING_LEVEL` finds it. The interval is score ± t(0.975, ν) · SE, with
    Satterthwaite's ν for that sum (about 9–20 with 20 raters × 10 images where they differ, large where they do
    not): wider where few images or few raters carry the variance.
    """
    n_raters, n_images = wins.shape[:2]
    if n_raters < 2 or n_images < 2:
        return np.full(len(scores), np.nan)
    raters, images = cluster_draws(n_raters, n_images, n_resamples, seed)

    def refitted(rater_draws: np.ndarray, image_draws: np.ndarray) -> np.ndarray:
        resampled = np.einsum("br,bk,rkij->bij", rater_draws, image_draws, wins, optimize=True)
        return np.array([fit_scores(w, alpha, scores) for w in resampled])

    by_rater, by_image = refitted(raters, np.ones_like(images)), refitted(np.ones_like(raters), images)
    crossed = refitted(raters, images) - by_rater - by_image + scores
    # The bootstrap's variances, its shrinkage (1 − 1/n) undone.
    rater_ms = by_rater.var(axis=0, ddof=1) / (1 - 1 / n_raters)
    image_ms = by_image.var(axis=0, ddof=1) / (1 - 1 / n_images)
    cell_ms = crossed.var(axis=0, ddof=1) / ((1 - 1 / n_raters) * (1 - 1 / n_images))
    cell_dof = (n_raters - 1) * (n_images - 1)
    rater_part = rater_ms > stats.f.ppf(1 - POOLING_LEVEL, n_raters - 1, cell_dof) * cell_ms
    image_part = image_ms > stats.f.ppf(1 - POOLING_LEVEL, n_images - 1, cell_dof) * cell_ms
    variance = cell_ms + rater_part * (rater_ms - cell_ms) + image_part * (image_ms - cell_ms)
    cell_weight = 1 - rater_part.astype(int) - image_part.astype(int)  # of cell_ms in variance: 1, 0 or −1
    spread = (
        rater_part * rater_ms**2 / (n_raters - 1)
        + image_part * image_ms**2 / (n_images - 1)
        + cell_weight**2 * cell_ms**2 / cell_dof
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        dof = variance**2 / spread
    return np.where(variance > 0, stats.t.ppf(0.5 + CONFIDENCE / 2, dof) * np.sqrt(variance), 0.0)


def bradley_terry(
    choices: pd.DataFrame,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    alpha: float = REGULARISATION,
) -> pd.DataFrame:
    """Bradley–Terry scale values per method with 95 % intervals that count raters and images as random samples.

    ``score`` is the method's log strength θ, centred so that the methods' mean is 0: a method ``d`` above
    another is preferred to it with probability 1 / (1 + e^−d) (d = 0.5: 62 %, d = 1: 73 %, d = 2: 88 %), fitted
    with regularisation ``alpha`` (:func:`fit_scores`), which ``bt_alpha`` repeats on every row.

    The interval is ``score ± t · SE`` from a two-way cluster bootstrap over raters and images with ``n_resamples``
    resamples (:func:`bootstrap_half_width`, 3 fits each): like the ACR bootstrap interval, it says how far the
    scores may move with other raters and other images. In simulation (20 raters × 10 images, rater × method and
    image × method effects of SD 0.3) it covered the population's strengths 95.5 % (± 0.7) of the time, an interval
    over raters alone 88 %; with no rater or image effects, 97.7 % (``tests/test_survey_pairwise.py``). Seeded: the
    same choices give the same interval; NaN with a single rater or image. ``n_comparisons`` counts the choices that
    showed the method. Columns: :data:`SCORE_COLUMNS`, sorted by method.
    """
    if choices.empty:
        return pd.DataFrame(columns=SCORE_COLUMNS)
    methods = methods_of(choices)
    wins = preference_counts(choices, methods)
    scores = fit_scores(wins.sum(axis=(0, 1)), alpha)
    half_width = bootstrap_half_width(wins, scores, n_resamples, seed, alpha)
    shown = pd.concat([choices["left"], choices["right"]]).value_counts()
    return pd.DataFrame(
        {"method": methods, "score": scores, "ci95_low": scores - half_width, "ci95_high": scores + half_width,
         "n_comparisons": shown.reindex(methods).to_numpy(), "bt_alpha": alpha}
    )  # fmt: skip


def rater_agreement(choices: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """Per rater (the index): ``n_choices``, ``ties`` and ``agreement``, the share of their other choices that
    picked the method with the higher Bradley–Terry ``score`` (a :func:`bradley_terry` table of all raters), in
    [0, 1]: about 0.5 for someone choosing at random, NaN without such choices."""
    score = scores.set_index("method")["score"]
    tie = choices["choice"] == TIE
    left_better = choices["left"].map(score) > choices["right"].map(score)
    agrees = (choices["choice"] == LEFT) == left_better
    table = pd.DataFrame({"rater": choices["rater"], "tie": tie, "agrees": agrees.astype(float).where(~tie)})
    by_rater = table.groupby("rater")
    return pd.DataFrame(
        {"n_choices": by_rater.size(), "ties": by_rater["tie"].sum(), "agreement": by_rater["agrees"].mean()}
    )


@dataclass(frozen=True)
class PairAnalysis:
    """Every result table of one set of pair comparisons."""

    scores: pd.DataFrame
    wins: pd.DataFrame
    win_rate: pd.DataFrame


def analyse_pairs(choices: pd.DataFrame, alpha: float = REGULARISATION) -> PairAnalysis:
    """Bradley–Terry scores (fitted with regularisation ``alpha``), wins with sign tests, and the win-rate matrix of
    ``choices``."""
    return PairAnalysis(
        scores=bradley_terry(choices, alpha=alpha), wins=win_counts(choices), win_rate=win_rate(choices)
    )
