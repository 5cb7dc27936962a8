"""How far raters agree with each other (and with themselves): pure functions on the frames of :mod:`survey.export`.

- :func:`krippendorff_alpha`: Krippendorff's alpha (ordinal) of ACR scores (the ``krippendorff`` package).
- :func:`consistence`: Kendall & Babington Smith's coefficient of consistence of each pair comparison rater.
- :func:`agreement` and :func:`agreement_by_image`: their coefficient of agreement between pair comparison raters.

The pair comparison coefficients are from M. G. Kendall and B. Babington Smith, "On the method of paired
comparisons", Biometrika 31 (1940), 324–345; no maintained Python library implements them. A tie counts half a win
for each side, as in :mod:`survey.pairwise` (the 1940 formulas assume no ties; with ties the counts may be fractional).
"""

from __future__ import annotations

import krippendorff
import numpy as np
import pandas as pd

from survey.db import MAX_SCORE, MIN_SCORE
from survey.pairwise import methods_of, preference_counts


def krippendorff_alpha(ratings: pd.DataFrame) -> float:
    """Krippendorff's alpha of ``ratings`` (``rater``, ``image``, ``method``, ``score``, as
    :func:`survey.export.load_ratings` returns them), with the ordinal metric over the 1–5 scale.

    The units are the presentations (image × method), each scored by some or all raters. 1 means every rater gave
    every presentation the same score; 0, no more agreement than scores drawn at random from all scores given; below
    0, systematic disagreement. Usual readings: ≥ 0.8 reliable, ≥ 0.667 enough for tentative conclusions. NaN when
    no presentation has two scores, or when every score is the same (nothing to agree on).
    """
    table = ratings.pivot_table(index="rater", columns=["image", "method"], values="score", aggfunc="first")
    if not (table.notna().sum(axis=0) >= 2).any():
        return float("nan")
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(
            krippendorff.alpha(
                reliability_data=table.to_numpy(dtype=float),
                level_of_measurement="ordinal",
                value_domain=list(range(MIN_SCORE, MAX_SCORE + 1)),
            )
        )


def consistence(choices: pd.DataFrame) -> pd.DataFrame:
    """Kendall & Babington Smith's coefficient of consistence ζ of each rater of ``choices`` (``rater``, ``image``,
    ``left``, ``right``, ``choice``, as :func:`survey.export.study_choices` returns them).

    On every image where a rater compared each pair of the n methods once, their choices form a tournament with
    d = n(n − 1)(2n − 1) / 12 − Σ a_i² / 2 circular triads (A over B, B over C, yet C over A), a_i being method i's
    wins; ζ = 1 − 24 d / (n³ − n) for odd n and 1 − 24 d / (n³ − 4n) for even n, from 1 (no circular triad: the
    choices follow one order) down to 0 (as many as possible). A rater choosing at random scores 0.5 on average with
    4 or 5 methods; NaN for fewer than 3 methods (no triad possible).

    One row per rater with such an image, indexed by ``rater``: ``n_images`` (their complete tournaments),
    ``circular_triads`` (d summed over them) and ``consistence`` (ζ over them).
    """
    methods = methods_of(choices)
    n = len(methods)
    wins = preference_counts(choices, methods)  # raters × images × methods × methods
    complete = ((wins + wins.swapaxes(2, 3)) == 1 - np.eye(n)).all(axis=(2, 3))
    triads = n * (n - 1) * (2 * n - 1) / 12 - (wins.sum(axis=3) ** 2).sum(axis=2) / 2
    most = (n**3 - n if n % 2 else n**3 - 4 * n) / 24 if n >= 3 else np.nan
    table = pd.DataFrame(
        {"n_images": complete.sum(axis=1), "circular_triads": np.where(complete, triads, 0.0).sum(axis=1)},
        index=pd.Index(np.unique(choices["rater"].to_numpy()), name="rater"),
    )
    table = table[table["n_images"] > 0]
    return table.assign(consistence=1 - table["circular_triads"] / (table["n_images"] * most))


def agreement_counts(choices: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per image of ``choices`` (sorted): the images, the number of agreeing pairs of raters, Σ over ordered pairs of
    methods (i, j) of C(γ_ij, 2), γ_ij being how many raters preferred i to j there; and the most there could be,
    Σ over pairs {i, j} of C(m_ij, 2), m_ij being how many raters compared them there."""
    methods = methods_of(choices)
    preferred = preference_counts(choices, methods).sum(axis=0)  # images × methods × methods
    compared = np.triu(preferred + preferred.swapaxes(1, 2), k=1)
    agreeing = (preferred * (preferred - 1) / 2).sum(axis=(1, 2))
    possible = (compared * (compared - 1) / 2).sum(axis=(1, 2))
    return np.unique(choices["image"].to_numpy()), agreeing, possible


def agreement_by_image(choices: pd.DataFrame) -> pd.DataFrame:
    """Kendall & Babington Smith's coefficient of agreement u between the raters of ``choices`` on each image.

    u = 2 Σ C(γ_ij, 2) / Σ C(m_ij, 2) − 1 (see :func:`agreement_counts`; with m raters who each compared every pair
    of n methods once, the denominator is C(m, 2) C(n, 2)): 1 when all raters made the same choices, 0 when pairs of
    raters agree as often as they disagree, down to −1/(m − 1) (m even) or −1/m (m odd). One row per image, indexed
    by ``image``: ``n_raters`` who chose there and ``agreement`` (NaN below 2 raters)."""
    images, agreeing, possible = agreement_counts(choices)
    with np.errstate(invalid="ignore", divide="ignore"):
        u = 2 * agreeing / possible - 1
    n_raters = choices.groupby("image")["rater"].nunique().reindex(images).to_numpy()
    return pd.DataFrame({"n_raters": n_raters, "agreement": u}, index=pd.Index(images, name="image"))


def agreement(choices: pd.DataFrame) -> float:
    """The coefficient of agreement u of :func:`agreement_by_image` over all images at once: every image's agreeing
    pairs of raters over every image's possible ones (NaN without an image that 2 raters compared on)."""
    _, agreeing, possible = agreement_counts(choices)
    return float(2 * agreeing.sum() / possible.sum() - 1) if possible.sum() else float("nan")
