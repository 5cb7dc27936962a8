"""Statistics of pair comparisons (2AFC): pure functions on pandas DataFrames.

A choices frame has one row per answer with the columns ``rater``, ``image``, ``left`` and ``right`` (the conditions
shown as version A, on the left or first, and version B, on the right or second) and ``choice``: :data:`LEFT`,
:data:`RIGHT` or :data:`TIE` ("no difference", where the study allows it); other columns are ignored.

Ties count as half a win for each side in the Bradley–Terry fit and the win rates, and are left out of the sign
tests (they say nothing about which side is better).

- :func:`win_counts`: wins and ties per pair of methods, with two-sided sign tests and Holm-adjusted p-values.
- :func:`win_rate`: the method × method matrix of how often the row method was preferred to the column method.
- :func:`bradley_terry`: Bradley–Terry scale values per method (fitted by ``choix``) with 95 % intervals from a
  bootstrap over raters.
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
from survey.stats import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, CONFIDENCE, holm

SCORE_COLUMNS = ["method", "score", "ci95_low", "ci95_high", "n_comparisons"]
WINS_COLUMNS = ["method_a", "method_b", "wins_a", "wins_b", "ties", "p_holm"]
#: choix's regularisation of the I-LSR fit (``alpha``): tiny, so that it changes no estimate measurably, yet a
#: method that wins every comparison gets a large finite score instead of an infinite one.
REGULARISATION = 0.01


def methods_of(choices: pd.DataFrame) -> list[str]:
    """Every method shown in ``choices``, sorted by name."""
    return sorted(set(choices["left"]) | set(choices["right"]))


def preference_counts(choices: pd.DataFrame, methods: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(raters sorted by id, wins): ``wins[r, i, j]`` is how often rater ``r`` preferred ``methods[i]`` to
    ``methods[j]``, a tie counting half for each side."""
    raters, rater = np.unique(choices["rater"].to_numpy(), return_inverse=True)
    index = {method: i for i, method in enumerate(methods)}
    left, right = (choices[side].map(index).to_numpy(dtype=int) for side in ("left", "right"))
    choice = choices["choice"].to_numpy()
    wins = np.zeros((len(raters), len(methods), len(methods)))
    np.add.at(wins, (rater, left, right), np.select([choice == LEFT, choice == TIE], [1.0, 0.5], 0.0))
    np.add.at(wins, (rater, right, left), np.select([choice == RIGHT, choice == TIE], [1.0, 0.5], 0.0))
    return raters, wins


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
    wins = preference_counts(choices, methods)[1].sum(axis=0)
    with np.errstate(invalid="ignore"):
        rate = wins / (wins + wins.T)
    return pd.DataFrame(rate, index=pd.Index(methods, name="method"), columns=methods)


def fit_scores(wins: np.ndarray, initial: np.ndarray | None = None) -> np.ndarray:
    """Bradley–Terry scale values (natural-log strengths, mean 0) of a methods × methods win matrix, by choix's
    I-LSR maximum-likelihood fit with :data:`REGULARISATION`; ``initial`` values start the iteration."""
    return choix.ilsr_pairwise_dense(wins, alpha=REGULARISATION, initial_params=initial)


def bradley_terry(
    choices: pd.DataFrame, n_resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> pd.DataFrame:
    """Bradley–Terry scale values per method with 95 % intervals from a bootstrap over raters.

    ``score`` is the method's log strength θ, centred so that the methods' mean is 0: a method ``d`` above
    another is preferred to it with probability 1 / (1 + e^−d) (d = 0.5: 62 %, d = 1: 73 %, d = 2: 88 %).

    The interval is ``score ± t(0.975, R − 1) · SE`` for R raters, SE being the standard deviation of the scores
    refitted to ``n_resamples`` resamples of the raters (drawn with replacement, each with all their choices): it
    counts raters as a random sample, each a cluster of correlated choices, and Student's t makes up for estimating
    SE from a few clusters (percentile intervals cover the truth only about 92 % of the time with 20 raters).
    Seeded: the same choices give the same interval; NaN with a single rater. ``n_comparisons`` counts the choices
    that showed the method. Columns: :data:`SCORE_COLUMNS`, sorted by method.
    """
    if choices.empty:
        return pd.DataFrame(columns=SCORE_COLUMNS)
    methods = methods_of(choices)
    raters, per_rater = preference_counts(choices, methods)
    scores = fit_scores(per_rater.sum(axis=0))
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(len(raters), np.full(len(raters), 1 / len(raters)), size=n_resamples)
    resampled = np.array([fit_scores(wins, scores) for wins in np.einsum("br,rij->bij", draws, per_rater)])
    half_width = stats.t.ppf(0.5 + CONFIDENCE / 2, len(raters) - 1) * resampled.std(axis=0, ddof=1)
    shown = pd.concat([choices["left"], choices["right"]]).value_counts()
    return pd.DataFrame(
        {"method": methods, "score": scores, "ci95_low": scores - half_width, "ci95_high": scores + half_width,
         "n_comparisons": shown.reindex(methods).to_numpy()}
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


def analyse_pairs(choices: pd.DataFrame) -> PairAnalysis:
    """Bradley–Terry scores, wins with sign tests, and the win-rate matrix of ``choices``."""
    return PairAnalysis(scores=bradley_terry(choices), wins=win_counts(choices), win_rate=win_rate(choices))
