"""How many raters a study needs: simulated studies, analysed as the lab analyses real ones.

``python -m survey plan`` (:func:`plan_text`) draws studies of a given design at several numbers of raters and
reports, for each, the power of the Holm-corrected tests and the mean width of the 95 % intervals:

- ACR: scores round(quality + rater leniency + image difficulty + noise) clipped to 1–5 (:func:`simulate_ratings`),
  analysed with :mod:`survey.stats` (MOS with the two-way cluster bootstrap interval, paired Wilcoxon tests, Holm).
- PC: choices from Bradley–Terry strengths that each rater and each image shift a little (:func:`simulate_choices`),
  analysed with :mod:`survey.pairwise` (Bradley–Terry scores with their bootstrap interval, sign tests, Holm).

The conditions are spaced evenly by the expected difference (ACR: ``difference`` MOS points between neighbours,
centred on 3; PC: Bradley–Terry strengths ``logit(p)`` apart, so that of two neighbours the better one is preferred
with probability ``p`` by a typical rater on a typical image). Power is the share of neighbouring pairs, over all
simulated studies, whose test comes out significant (Holm-adjusted p < 0.05, every pair tested as in a real study).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from survey.db import ACR, LEFT, MAX_SCORE, MIN_SCORE, PC, RIGHT
from survey.errors import SurveyError
from survey.pairwise import bradley_terry, win_counts
from survey.stats import cluster_bootstrap, paired_wilcoxon

#: Default assumptions (SDs in MOS points for ACR; in Bradley–Terry log strength for PC's rater and image SDs): how
#: much raters' leniency (ACR) or taste per method (PC) varies, how much images' difficulty (ACR) or each method's
#: strength per image (PC) varies, and the scatter of single ACR scores. The ACR values are those of the lab's
#: coverage simulations; fit them to a pilot study's variance components where there is one.
RATER_SD, IMAGE_SD, NOISE_SD = 0.3, 0.3, 0.6
#: The numbers of raters tried, in order; the search stops at the first that meets both targets.
RATER_COUNTS = (4, 8, 12, 16, 24, 32, 48, 64)
#: Simulated studies per number of raters, and bootstrap resamples per simulated study, by protocol: enough for the
#: power to about ±5 points (1 SD; binomial error of 60 or 30 studies, less as neighbouring pairs add up) and the
#: mean width to a few hundredths, in under a minute for 4 conditions × 10 images on one core (a PC resample costs
#: three Bradley–Terry fits, an ACR one nearly nothing; the Wilcoxon tests take most of the ACR time).
SIMULATIONS = {ACR: 60, PC: 30}
RESAMPLES = {ACR: 200, PC: 30}
#: Targets: the power of the Holm-corrected tests at level :data:`LEVEL`, and the 95 % interval width (MOS points
#: for ACR, Bradley–Terry log strength for PC).
TARGET_POWER, TARGET_CI_WIDTH, LEVEL = 0.8, 0.5, 0.05
#: The ACR conditions are centred on this score.
MID_SCORE = (MIN_SCORE + MAX_SCORE) / 2


@dataclass(frozen=True)
class Assumptions:
    """Standard deviations of the simulated effects (see :data:`RATER_SD`); ``noise_sd`` applies to ACR only."""

    rater_sd: float = RATER_SD
    image_sd: float = IMAGE_SD
    noise_sd: float = NOISE_SD


@dataclass(frozen=True)
class Row:
    """The simulated studies with ``n_raters`` raters: ``power`` in [0, 1] and the mean 95 % interval ``ci_width``."""

    n_raters: int
    power: float
    ci_width: float


def simulate_ratings(
    rng: np.random.Generator, quality: Mapping[str, float], n_raters: int, n_images: int, assumptions: Assumptions
) -> pd.DataFrame:
    """A ratings frame (``rater``, ``image``, ``method``, ``score``): every rater scores every image × method once,
    round(quality + image difficulty + rater leniency + noise) clipped to the 1–5 scale, the three drawn from normal
    distributions with the SDs of ``assumptions``."""
    methods = list(quality)
    rater, image, method = (axis.ravel() for axis in np.indices((n_raters, n_images, len(methods))))
    latent = (
        np.array(list(quality.values()))[method]
        + rng.normal(0, assumptions.image_sd, n_images)[image]
        + rng.normal(0, assumptions.rater_sd, n_raters)[rater]
        + rng.normal(0, assumptions.noise_sd, rater.size)
    )
    score = np.clip(np.rint(latent), MIN_SCORE, MAX_SCORE).astype(int)
    return pd.DataFrame({"rater": rater, "image": image, "method": np.array(methods)[method], "score": score})


def simulate_choices(
    rng: np.random.Generator,
    strengths: Mapping[str, float],
    n_raters: int,
    n_images: int,
    rater_sd: float = 0.0,
    image_sd: float = 0.0,
) -> pd.DataFrame:
    """A choices frame (``rater``, ``image``, ``left``, ``right``, ``choice``): every rater compares every pair of
    methods on every image once, sides at random.

    The strength of method m for rater r on image k is ``strengths[m]`` + a rater × method effect (SD ``rater_sd``)
    + an image × method effect (SD ``image_sd``), and version A is chosen with the Bradley–Terry probability
    1 / (1 + e^(θ_B − θ_A)) of those strengths; with both SDs 0 this is the plain Bradley–Terry model.
    """
    names, theta = np.array(list(strengths)), np.array(list(strengths.values()))
    theta = (
        theta + rng.normal(0, rater_sd, (n_raters, 1, len(names))) + rng.normal(0, image_sd, (1, n_images, len(names)))
    )
    pairs = np.array(list(itertools.combinations(range(len(names)), 2)))
    rater, image, pair = (axis.ravel() for axis in np.indices((n_raters, n_images, len(pairs))))
    first, second = pairs[pair].T
    swap = rng.random(rater.size) < 0.5
    left, right = np.where(swap, second, first), np.where(swap, first, second)
    a_wins = rng.random(rater.size) < 1 / (1 + np.exp(theta[rater, image, right] - theta[rater, image, left]))
    return pd.DataFrame(
        {"rater": rater, "image": image, "left": names[left], "right": names[right],
         "choice": np.where(a_wins, LEFT, RIGHT)}
    )  # fmt: skip


def condition_names(conditions: str) -> list[str]:
    """The conditions of ``conditions``: a number n (``c1`` … ``cn``) or comma-separated names; at least 2."""
    names = [f"c{i + 1}" for i in range(int(conditions))] if conditions.strip().isdigit() else conditions.split(",")
    names = [name.strip() for name in names if name.strip()]
    if len(names) < 2 or len(set(names)) < len(names):
        raise SurveyError(f"--conditions needs at least 2 distinct conditions, got {conditions!r}")
    return names


def true_values(protocol: str, names: Sequence[str], difference: float) -> dict[str, float]:
    """Each condition's true value, spaced evenly by ``difference``, in the order of ``names`` (the last best).

    ACR: the MOS, ``difference`` points between neighbours (> 0), centred on :data:`MID_SCORE`. PC: the
    Bradley–Terry strength, logit(``difference``) apart, ``difference`` being the probability that the better of
    two neighbours is preferred (between 0.5 and 1), centred on 0.
    """
    if protocol == PC and not 0.5 < difference < 1:
        raise SurveyError(f"pc: --difference is a preference probability between 0.5 and 1, got {difference}")
    if protocol == ACR and difference <= 0:
        raise SurveyError(f"acr: --difference is a MOS difference in points, above 0, got {difference}")
    step = math.log(difference / (1 - difference)) if protocol == PC else difference
    centre = 0.0 if protocol == PC else MID_SCORE
    offsets = np.arange(len(names)) - (len(names) - 1) / 2
    return {name: centre + step * offset for name, offset in zip(names, offsets, strict=True)}


def simulate_row(
    protocol: str,
    truth: Mapping[str, float],
    n_raters: int,
    n_images: int,
    assumptions: Assumptions,
    n_simulations: int,
    n_resamples: int,
    seed: int,
) -> Row:
    """Power and mean interval width over ``n_simulations`` studies of ``n_raters`` × ``n_images`` (seeded by
    ``seed`` and ``n_raters``, so every row is reproducible on its own)."""
    rng = np.random.default_rng([seed, n_raters])
    neighbours = {frozenset(pair) for pair in itertools.pairwise(sorted(truth, key=truth.get))}
    significant, widths = [], []
    for study in range(n_simulations):
        if protocol == PC:
            choices = simulate_choices(rng, truth, n_raters, n_images, assumptions.rater_sd, assumptions.image_sd)
            scores = bradley_terry(choices, n_resamples=n_resamples, seed=study)
            widths.append((scores["ci95_high"] - scores["ci95_low"]).mean())
            tests = win_counts(choices)
        else:
            ratings = simulate_ratings(rng, truth, n_raters, n_images, assumptions)
            intervals = cluster_bootstrap(ratings, n_resamples=n_resamples, seed=study)
            widths.append((intervals["ci95_high_boot"] - intervals["ci95_low_boot"]).mean())
            tests = paired_wilcoxon(ratings)
        for a, b, p_holm in zip(tests["method_a"], tests["method_b"], tests["p_holm"], strict=True):
            if frozenset((a, b)) in neighbours:
                significant.append(p_holm < LEVEL)
    return Row(n_raters, float(np.mean(significant)), float(np.mean(widths)))


def plan(
    protocol: str,
    truth: Mapping[str, float],
    n_images: int,
    assumptions: Assumptions = Assumptions(),
    target_power: float = TARGET_POWER,
    target_ci_width: float = TARGET_CI_WIDTH,
    n_simulations: int | None = None,
    n_resamples: int | None = None,
    seed: int = 0,
) -> list[Row]:
    """One :class:`Row` per number of raters in :data:`RATER_COUNTS`, up to the first that reaches both
    ``target_power`` and an interval no wider than ``target_ci_width``. ``n_simulations`` and ``n_resamples``
    default to :data:`SIMULATIONS` and :data:`RESAMPLES` of the protocol."""
    rows = []
    for n_raters in RATER_COUNTS:
        rows.append(
            simulate_row(
                protocol, truth, n_raters, n_images, assumptions, n_simulations or SIMULATIONS[protocol],
                n_resamples or RESAMPLES[protocol], seed,
            )
        )  # fmt: skip
        if rows[-1].power >= target_power and rows[-1].ci_width <= target_ci_width:
            break
    return rows


def raters_needed(rows: Sequence[Row], target_power: float, target_ci_width: float) -> tuple[int | None, int | None]:
    """The fewest raters of ``rows`` that reach ``target_power``, and that keep the interval within
    ``target_ci_width``; None where no row does."""
    power = next((row.n_raters for row in rows if row.power >= target_power), None)
    width = next((row.n_raters for row in rows if row.ci_width <= target_ci_width), None)
    return power, width


def plan_text(
    protocol: str,
    conditions: str,
    n_images: int,
    difference: float,
    assumptions: Assumptions = Assumptions(),
    target_power: float = TARGET_POWER,
    target_ci_width: float = TARGET_CI_WIDTH,
    n_simulations: int | None = None,
    seed: int = 0,
) -> str:
    """What ``python -m survey plan`` prints: the design and assumptions, the table (raters → power, mean 95 %
    interval width) and the raters needed for each target."""
    if n_images < 2:
        raise SurveyError(f"--images must be at least 2, got {n_images}")
    names = condition_names(conditions)
    truth = true_values(protocol, names, difference)
    n_simulations = n_simulations or SIMULATIONS[protocol]
    rows = plan(protocol, truth, n_images, assumptions, target_power, target_ci_width, n_simulations, seed=seed)
    if protocol == PC:
        step = truth[names[1]] - truth[names[0]]
        effect = f"neighbours preferred with p = {difference:g} (Bradley–Terry d = logit(p) = {step:.2f})"
        spread = f"rater × method SD {assumptions.rater_sd:g}, image × method SD {assumptions.image_sd:g}"
        test, unit = "sign tests", "log strength"
    else:
        effect = f"neighbours {difference:g} MOS points apart"
        spread = (
            f"rater SD {assumptions.rater_sd:g}, image SD {assumptions.image_sd:g}, noise SD {assumptions.noise_sd:g}"
        )
        test, unit = "Wilcoxon tests", "MOS points"
    power_at, width_at = raters_needed(rows, target_power, target_ci_width)
    lines = [
        f"{protocol.upper()}: {len(names)} conditions ({', '.join(names)}) × {n_images} images, {effect}.",
        f"Assumed {spread}; {n_simulations} simulated studies per row (seed {seed}).",
        "",
        f"{'raters':>6}  {'power':>5}  {'CI width':>8}",
        *(f"{row.n_raters:>6}  {row.power:>5.2f}  {row.ci_width:>8.2f}" for row in rows),
        "",
        f"{target_power * 100:g} % power (Holm-adjusted {test}, p < {LEVEL:g}, neighbouring conditions): "
        + (f"{power_at} raters" if power_at else f"not reached with {rows[-1].n_raters} raters"),
        f"95 % interval width ≤ {target_ci_width:g} {unit}: "
        + (f"{width_at} raters" if width_at else f"not reached with {rows[-1].n_raters} raters"),
    ]
    return "\n".join(lines)
