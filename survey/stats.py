"""Statistics of opinion scores: pure functions on pandas DataFrames.

A ratings frame has one row per score with the columns ``rater``, ``image``, ``method`` (the condition) and
``score`` (an integer from 1 Bad to 5 Excellent); other columns are ignored. Each rater scores each
(image, method) at most once, as the survey guarantees.

- :func:`mos`: mean opinion score with a Student-t 95 % confidence interval over the individual scores, clipped to
  the scale.
- :func:`cluster_bootstrap`: a 95 % interval of each method's MOS that counts raters and images as random.
- :func:`dmos`: differential MOS against the hidden reference (ITU-T P.913).
- :func:`paired_wilcoxon`: paired two-sided Wilcoxon signed-rank tests between methods, pairing the scores one
  rater gave two methods on the same image.
- :func:`screen_raters`: ITU-R BT.500 observer screening (kurtosis rule) and the correlation-with-MOS rule.
- :func:`gold_check`: raters who scored a gold item (ITU-T P.808 style) outside its known range.
- :func:`speed_check`: raters who answer implausibly fast (scores or pair comparison choices).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from survey.db import GOLD_RANGES, MAX_SCORE, MIN_SCORE, REFERENCE

CONFIDENCE = 0.95
#: Columns of :func:`mos` after the grouping columns.
MOS_COLUMNS = ["mos", "std", "n_ratings", "n_raters", "ci95_low", "ci95_high"]
#: Columns of :func:`cluster_bootstrap` after ``method``.
BOOT_COLUMNS = ["ci95_low_boot", "ci95_high_boot"]
#: Bootstrap resamples behind every bootstrap interval, and their seed: the same data give the same interval.
BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED = 2000, 0
WILCOXON_COLUMNS = ["method_a", "method_b", "n_pairs", "mean_diff", "statistic", "p_value", "p_holm"]
#: BT.500 screening: a presentation's scores count as normal when their kurtosis β2 is in this range; outliers
#: are then beyond 2 standard deviations, otherwise beyond √20.
BT500_NORMAL_KURTOSIS = (2.0, 4.0)
#: BT.500: reject an observer with more than this fraction of outlying scores...
BT500_MAX_OUTLIER_FRACTION = 0.05
#: ...unless their outliers lean this much to one side: |P − Q| / (P + Q) ≥ 0.3.
BT500_MAX_BALANCE = 0.3
#: Correlation rule (ITU-T P.913): reject a rater whose scores correlate with the MOS below this Pearson r.
MIN_MOS_CORRELATION = 0.75
#: Too-fast rule: flag a rater whose median response time is below this many milliseconds beyond the study's minimum
#: viewing time (:func:`too_fast_threshold`). Judging a photo (or comparing two) takes longer; a rater this quick
#: clicks through without looking (as soon as the page lets them), or is a bot.
MIN_MEDIAN_RESPONSE_MS = 1000
#: The range of a differential score, score − the reference's score + 5, each score from 1 to 5.
DMOS_BOUNDS = (MIN_SCORE - MAX_SCORE + MAX_SCORE, MAX_SCORE - MIN_SCORE + MAX_SCORE)


def mos(
    ratings: pd.DataFrame, by: Sequence[str] = ("method",), bounds: tuple[float, float] = (MIN_SCORE, MAX_SCORE)
) -> pd.DataFrame:
    """MOS per group: columns ``by`` + :data:`MOS_COLUMNS`, one row per group, sorted by the groups.

    ``std`` is the sample standard deviation of the scores; the interval is ``mos ± t(0.975, n − 1) · std / √n``
    over the ``n_ratings`` scores (NaN for a single score), clipped to the ``bounds`` every score lies in (the scale):
    with few scores the t interval reaches far past the scale (n = 2: ± 12.7 standard errors), and the part outside
    holds no possible mean.
    """
    groups = ratings.groupby(list(by), sort=True)
    table = groups["score"].agg(mos="mean", std="std", n_ratings="count")
    table["n_raters"] = groups["rater"].nunique()
    n = table["n_ratings"]
    half_width = stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * table["std"] / np.sqrt(n)
    table["ci95_low"] = (table["mos"] - half_width).clip(lower=bounds[0])
    table["ci95_high"] = (table["mos"] + half_width).clip(upper=bounds[1])
    return table.reset_index()[[*by, *MOS_COLUMNS]]


def cluster_bootstrap(
    ratings: pd.DataFrame, n_resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> pd.DataFrame:
    """A 95 % interval of each method's MOS that counts raters and images as random samples.

    Two-way cluster ("pigeonhole") bootstrap for crossed factors (Owen 2007): each resample draws the raters with
    replacement and, independently, the images with replacement, keeps every score a drawn rater gave a drawn image
    (as many times as both were drawn) and takes each method's mean; the same draws serve every method. The interval
    is the 2.5th to 97.5th percentile of the ``n_resamples`` means. Unlike the Student-t interval of :func:`mos`,
    which treats the scores as independent, it widens with how much raters (lenient or strict) and images (easy or
    hard) differ, so it says how far the MOS may move with other raters and other images; it errs slightly wide
    when scores vary mostly within rater × image. Seeded: the same ratings give the same interval.

    Columns: ``method`` and :data:`BOOT_COLUMNS`, one row per method, sorted by method.
    """
    if ratings.empty:
        return pd.DataFrame(columns=["method", *BOOT_COLUMNS])
    methods, method = np.unique(ratings["method"].to_numpy(), return_inverse=True)
    _, rater = np.unique(ratings["rater"].to_numpy(), return_inverse=True)
    _, image = np.unique(ratings["image"].to_numpy(), return_inverse=True)
    shape = (rater.max(initial=-1) + 1, image.max(initial=-1) + 1, len(methods))
    sums, counts = np.zeros(shape), np.zeros(shape)
    np.add.at(sums, (rater, image, method), ratings["score"].to_numpy(dtype=float))
    np.add.at(counts, (rater, image, method), 1.0)
    raters, images = cluster_draws(shape[0], shape[1], n_resamples, seed)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.einsum("br,rim,bi->bm", raters, sums, images, optimize=True) / np.einsum(
            "br,rim,bi->bm", raters, counts, images, optimize=True
        )
    tail = 50 * (1 - CONFIDENCE)
    low, high = np.nanpercentile(means, [tail, 100 - tail], axis=0)
    return pd.DataFrame({"method": methods, BOOT_COLUMNS[0]: low, BOOT_COLUMNS[1]: high})


def cluster_draws(n_raters: int, n_images: int, n_resamples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The draws of a two-way cluster bootstrap over raters and images: how often each rater and, independently,
    each image is drawn (with replacement) in each resample, as integer arrays of shape (``n_resamples``,
    ``n_raters``) and (``n_resamples``, ``n_images``), each row summing to ``n_raters`` or ``n_images``. Seeded: the
    same sizes and seed give the same draws."""
    rng = np.random.default_rng(seed)
    raters = rng.multinomial(n_raters, np.full(n_raters, 1 / n_raters), size=n_resamples)
    images = rng.multinomial(n_images, np.full(n_images, 1 / n_images), size=n_resamples)
    return raters, images


def dmos(ratings: pd.DataFrame, reference: str = REFERENCE) -> pd.DataFrame:
    """Differential MOS per method against the hidden reference condition ``reference``.

    Each score becomes ``score − (the same rater's score of that image's reference) + 5`` (ITU-T P.913), so
    5 means "as good as the original"; above 5, raters scored the method above the original (possible for a method
    that sharpens, or when the original has flaws), from 1 to 9 in all. Columns: ``method``, ``dmos`` and the rest
    of :data:`MOS_COLUMNS`. Empty when no reference was rated.
    """
    ref = ratings.loc[ratings["method"] == reference, ["rater", "image", "score"]]
    paired = ratings[ratings["method"] != reference].merge(ref, on=["rater", "image"], suffixes=("", "_ref"))
    paired["score"] = paired["score"] - paired["score_ref"] + MAX_SCORE
    return mos(paired, bounds=DMOS_BOUNDS).rename(columns={"mos": "dmos"})


def paired_wilcoxon(ratings: pd.DataFrame) -> pd.DataFrame:
    """Paired two-sided Wilcoxon signed-rank test for every pair of methods.

    A pair is the two scores one rater gave methods ``method_a`` and ``method_b`` on the same image.
    ``mean_diff`` is the mean of a − b in score points. Zero differences are dropped (scipy's default); when
    every difference is zero the test has nothing to rank and ``p_value`` is 1. ``p_holm`` is ``p_value`` adjusted
    for testing every pair (Holm–Bonferroni): compare it with 0.05 to keep the family-wise error rate at 5 %.
    Columns: :data:`WILCOXON_COLUMNS`.
    """
    wide = ratings.pivot_table(index=["rater", "image"], columns="method", values="score")
    rows = []
    for a, b in itertools.combinations(sorted(wide.columns), 2):
        pairs = wide[[a, b]].dropna()
        diff = pairs[a] - pairs[b]
        statistic, p_value = math.nan, 1.0
        if (diff != 0).any():
            result = stats.wilcoxon(pairs[a], pairs[b])
            statistic, p_value = float(result.statistic), float(result.pvalue)
        mean_diff = float(diff.mean()) if len(diff) else math.nan
        rows.append((a, b, len(pairs), mean_diff, statistic, p_value))
    table = pd.DataFrame(rows, columns=WILCOXON_COLUMNS[:-1])
    table["p_holm"] = holm(table["p_value"].to_numpy())
    return table


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (in [0, 1], same order as ``p_values``)."""
    order = np.argsort(p_values)
    steps = (len(p_values) - np.arange(len(p_values))) * p_values[order]
    adjusted = np.empty_like(steps)
    adjusted[order] = np.minimum(np.maximum.accumulate(steps), 1.0)
    return adjusted


def screen_raters(ratings: pd.DataFrame) -> pd.DataFrame:
    """Flag unreliable raters; one row per rater, indexed by ``rater``.

    BT.500 (ITU-R BT.500, annex 2, §2.3): for each presentation (image, method) with mean u, sample standard
    deviation S and kurtosis β2 = m4 / m2², a score counts as high (P) when ≥ u + kS and low (Q) when ≤ u − kS,
    with k = 2 if 2 ≤ β2 ≤ 4 and √20 otherwise; presentations where everyone agrees (S = 0) have no outliers.
    A rater is rejected when (P + Q) / N > 0.05 and |P − Q| / (P + Q) < 0.3, N being their number of scores.

    Correlation (ITU-T P.913): ``r_mos`` is the Pearson correlation of a rater's scores with the MOS of the same
    presentations over all raters; a rater is rejected when it is below 0.75, or undefined (constant scores or
    fewer than two ratings: nothing shows that they follow the images).

    Columns: ``n_ratings``, ``mean_score``, ``p_count``, ``q_count``, ``bt500_reject``, ``r_mos``,
    ``corr_reject``, ``flagged`` (either rule) and ``reason`` (why, in words; "" when not flagged).
    """
    score = ratings["score"].astype(float)
    presentation = [ratings["image"], ratings["method"]]
    u = score.groupby(presentation).transform("mean")
    s = score.groupby(presentation).transform("std")
    deviation = score - u
    m2 = (deviation**2).groupby(presentation).transform("mean")
    m4 = (deviation**4).groupby(presentation).transform("mean")
    beta2 = m4 / m2**2
    low_kurtosis, high_kurtosis = BT500_NORMAL_KURTOSIS
    k = np.where((beta2 >= low_kurtosis) & (beta2 <= high_kurtosis), 2.0, math.sqrt(20))
    spread = s > 0
    per_score = pd.DataFrame(
        {
            "rater": ratings["rater"],
            "score": score,
            "high": spread & (score >= u + k * s),
            "low": spread & (score <= u - k * s),
        }
    )
    by_rater = per_score.groupby("rater")
    table = by_rater.agg(n_ratings=("score", "size"), mean_score=("score", "mean"))
    table["p_count"] = by_rater["high"].sum()
    table["q_count"] = by_rater["low"].sum()
    outliers = table["p_count"] + table["q_count"]
    balance = (table["p_count"] - table["q_count"]).abs() / outliers.where(outliers > 0)
    table["bt500_reject"] = (outliers / table["n_ratings"] > BT500_MAX_OUTLIER_FRACTION) & (balance < BT500_MAX_BALANCE)

    dx = score - score.groupby(ratings["rater"]).transform("mean")
    dy = u - u.groupby(ratings["rater"]).transform("mean")
    sums = pd.DataFrame({"xy": dx * dy, "xx": dx**2, "yy": dy**2}).groupby(ratings["rater"]).sum()
    denominator = np.sqrt(sums["xx"] * sums["yy"])
    table["r_mos"] = sums["xy"] / denominator.where(denominator > 0)
    table["corr_reject"] = ~(table["r_mos"] >= MIN_MOS_CORRELATION)
    table["flagged"] = table["bt500_reject"] | table["corr_reject"]
    table["reason"] = [screening_reason(row) for row in table.itertuples()]
    return table


def screening_reason(row: Any) -> str:
    """Why :func:`screen_raters` flags the rater of ``row`` (one of its rows), in words; "" when it does not."""
    bt500 = f"BT.500: {row.p_count} high and {row.q_count} low outliers in {row.n_ratings} scores"
    return "; ".join(text for text in (bt500 if row.bt500_reject else "", correlation_reason(row)) if text)


def correlation_reason(row: Any) -> str:
    """Why the correlation rule of :func:`screen_raters` rejects the rater of ``row`` (one of its rows), in words; ""
    when it does not."""
    if not row.corr_reject:
        return ""
    if math.isnan(row.r_mos):
        return "no correlation with the MOS (constant scores, or fewer than 2)"
    return f"correlation with the MOS r = {row.r_mos:.2f} < {MIN_MOS_CORRELATION}"


def gold_check(gold: pd.DataFrame) -> pd.DataFrame:
    """Raters' scores of gold items (ITU-T P.808 style) against the range each gold condition must get
    (:data:`~survey.db.GOLD_RANGES`: the nearest-neighbour ×4 version 1–2, the original 4–5).

    ``gold`` has one row per score of a gold item: ``rater``, ``method`` (the gold condition) and ``score``. One row
    per rater, indexed by ``rater``: ``gold_fail`` (any score out of range) and ``reason`` (which, by condition, in
    words; "" when none). An attentive rater passes: the nearest-neighbour version is plainly blocky and the original
    plainly sharp.
    """
    ranges = gold["method"].map(GOLD_RANGES)
    failed = gold[(gold["score"] < ranges.str[0]) | (gold["score"] > ranges.str[1])].sort_values(["rater", "method"])
    text = [
        f"gold {method} scored {score} (expected {GOLD_RANGES[method][0]}–{GOLD_RANGES[method][1]})"
        for method, score in zip(failed["method"], failed["score"], strict=True)
    ]
    reasons = pd.Series(text, index=failed["rater"], dtype=str).groupby(level=0).agg("; ".join)
    raters = pd.Index(sorted(gold["rater"].unique()), name="rater")
    return pd.DataFrame({"gold_fail": raters.isin(reasons.index), "reason": reasons.reindex(raters, fill_value="")})


def too_fast_threshold(min_view_ms: int) -> float:
    """The too-fast rule's threshold for a study that refuses answers sooner than ``min_view_ms``: its raters cannot
    answer faster than that, so a median within :data:`MIN_MEDIAN_RESPONSE_MS` of it is what clicking through as soon
    as allowed looks like."""
    return min_view_ms + MIN_MEDIAN_RESPONSE_MS


def speed_check(answers: pd.DataFrame, min_median_ms: float = MIN_MEDIAN_RESPONSE_MS) -> pd.DataFrame:
    """Raters who answer implausibly fast.

    ``answers`` has one row per answer (a score or a choice) with ``rater`` and ``response_ms`` (milliseconds from
    sending the image to receiving the answer). One row per rater who answered, indexed by ``rater``:
    ``median_response_ms``, ``too_fast`` (it is below ``min_median_ms``) and ``reason`` ("too fast: median 350 ms <
    1000 ms"; "" when not too fast). The median, not the mean: a few long pauses do not hide clicking through the
    rest.
    """
    median = answers.groupby("rater")["response_ms"].median().rename("median_response_ms")
    too_fast = median < min_median_ms
    reasons = [
        f"too fast: median {ms:.0f} ms < {min_median_ms:g} ms" if fast else ""
        for ms, fast in zip(median, too_fast, strict=True)
    ]
    return pd.DataFrame({"median_response_ms": median, "too_fast": too_fast, "reason": reasons}, index=median.index)


@dataclass(frozen=True)
class Analysis:
    """Every result table of one set of ratings."""

    by_method: pd.DataFrame
    by_image: pd.DataFrame
    dmos: pd.DataFrame
    wilcoxon: pd.DataFrame


def analyse(ratings: pd.DataFrame, reference: str = REFERENCE) -> Analysis:
    """MOS per method (with both intervals) and per image × method, DMOS against ``reference`` and the paired
    Wilcoxon tests."""
    return Analysis(
        by_method=mos(ratings).merge(cluster_bootstrap(ratings), on="method", how="left"),
        by_image=mos(ratings, by=("image", "method")),
        dmos=dmos(ratings, reference),
        wilcoxon=paired_wilcoxon(ratings),
    )
