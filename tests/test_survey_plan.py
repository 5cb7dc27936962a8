"""``python -m survey plan``: simulated studies, analysed as real ones, say how many raters a design needs."""

import math
import re

import numpy as np
import pytest

from conftest import error_line, exit_status
from survey.__main__ import main
from survey.db import ACR, LEFT, PC, RIGHT
from survey.errors import SurveyError
from survey.plan import (
    Assumptions,
    condition_names,
    plan,
    raters_needed,
    simulate_choices,
    simulate_ratings,
    true_values,
)

NAMES = ["c1", "c2", "c3", "c4"]


def test_conditions_are_a_number_or_names_spaced_evenly_by_the_difference() -> None:
    assert condition_names("4") == NAMES and condition_names("bicubic, edsr") == ["bicubic", "edsr"]
    for bad in ("1", "a", "a,a"):
        with pytest.raises(SurveyError, match="at least 2 distinct"):
            condition_names(bad)
    assert true_values(ACR, NAMES, 0.4) == pytest.approx({"c1": 2.4, "c2": 2.8, "c3": 3.2, "c4": 3.6})
    strengths = true_values(PC, ["a", "b"], 0.75)  # logit(0.75) = ln 3 apart, centred on 0
    assert strengths == pytest.approx({"a": -math.log(3) / 2, "b": math.log(3) / 2})
    with pytest.raises(SurveyError, match="between 0.5 and 1"):
        true_values(PC, NAMES, 1.2)
    with pytest.raises(SurveyError, match="above 0"):
        true_values(ACR, NAMES, -0.2)


def test_simulated_studies_are_complete_and_follow_the_truth() -> None:
    rng = np.random.default_rng(0)
    ratings = simulate_ratings(rng, {"low": 2.0, "high": 4.0}, 6, 5, Assumptions())
    assert len(ratings) == 6 * 5 * 2 and ratings["score"].between(1, 5).all()
    assert ratings.groupby("method")["score"].mean()["high"] > ratings.groupby("method")["score"].mean()["low"] + 1.5
    choices = simulate_choices(rng, {"a": -1.0, "b": 1.0}, n_raters=50, n_images=4, rater_sd=0.3, image_sd=0.3)
    assert len(choices) == 50 * 4 and set(choices["choice"]) == {LEFT, RIGHT}
    b_wins = np.where(choices["choice"] == LEFT, choices["left"], choices["right"]) == "b"
    assert 0.8 < b_wins.mean() < 0.92  # 1 / (1 + e^−2) = 0.88, a little less with the rater and image effects


@pytest.mark.parametrize(("protocol", "large", "tiny"), [(ACR, 1.0, 0.03), (PC, 0.9, 0.51)])
def test_a_large_effect_needs_few_raters_and_a_tiny_one_many(protocol: str, large: float, tiny: float) -> None:
    easy = plan(protocol, true_values(protocol, NAMES, large), 10, target_ci_width=9, n_simulations=8)
    assert raters_needed(easy, 0.8, 9)[0] is not None and raters_needed(easy, 0.8, 9)[0] <= 8
    hard = plan(protocol, true_values(protocol, NAMES[:2], tiny), 10, target_ci_width=9, n_simulations=6)
    assert raters_needed(hard, 0.8, 9)[0] is None and hard[-1].n_raters == 64  # every count tried, none enough


@pytest.mark.slow
def test_power_grows_and_the_interval_narrows_with_raters() -> None:
    rows = plan(ACR, true_values(ACR, NAMES, 0.3), 10, target_ci_width=0.01, n_simulations=20)
    assert [row.n_raters for row in rows] == [4, 8, 12, 16, 24, 32, 48, 64]
    power, width = np.array([row.power for row in rows]), np.array([row.ci_width for row in rows])
    assert power[0] < 0.5 and power[-1] == 1.0 and (np.diff(power) > -0.1).all()
    assert (np.diff(width) < 0).all()
    assert width[-1] > 0.3  # the images' own spread (SD 0.3 over 10 images) stays, however many raters


def test_the_plan_command_prints_the_table_and_the_raters_needed(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["plan", "--protocol", "pc", "--conditions", "a,b,c", "--images", "6", "--difference", "0.85"]
    assert exit_status(main, [*argv, "--simulations", "5", "--ci-width", "1.5"]) == 0
    out = capsys.readouterr().out
    assert "PC: 3 conditions (a, b, c) × 6 images, neighbours preferred with p = 0.85" in out
    assert "raters  power  CI width" in out
    rows = [[float(x) for x in row] for row in re.findall(r"^ +(\d+) +([\d.]+) +([\d.]+)$", out, re.MULTILINE)]
    assert rows[0][0] == 4 and all(0 <= power <= 1 and width > 0 for _, power, width in rows)
    assert "80 % power (Holm-adjusted sign tests" in out and "95 % interval width ≤ 1.5 log strength" in out
    acr = ["plan", "--conditions", "3", "--images", "6", "--difference", "0.3", "--simulations", "3"]
    assert exit_status(main, acr) == 0
    assert "ACR: 3 conditions (c1, c2, c3) × 6 images, neighbours 0.3 MOS points apart" in capsys.readouterr().out
    assert exit_status(main, [*argv[:-1], "1.5"]) == 1
    assert "between 0.5 and 1" in error_line(capsys)
