"""Accepting and rejecting raters (survey.screening, issue #24): each rule rejects the rater it should and only that
one, with its reason in words; a rater who passes has no reason; the checks that need no other rater decide alone; the
export names the accepted raters in accepted_codes.csv; the report and the Results tab show agreement between raters."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

from survey.answers import submit_choice, submit_rating
from survey.creation import create_study
from survey.crowd import CrowdChecks
from survey.db import (
    ACR,
    BROKEN,
    GOLD,
    IMAGE_ROLES,
    LEFT,
    NEAREST,
    PC,
    REFERENCE,
    RIGHT,
    STUDY_IMAGE,
    TRAINING,
    TRAP,
    Rater,
    Stimulus,
    Store,
)
from survey.export import CODES_COLUMNS, export_study
from survey.pairwise import bradley_terry
from survey.raters import start_rater
from survey.report import AGREEMENT, PC_AGREEMENT
from survey.screening import (
    ACCEPTED,
    MAX_CIRCULAR_SHARE,
    MIN_PC_AGREEMENT,
    REJECTED,
    load_answers,
    own_answer_reasons,
    screen_acr,
    screen_pc,
)
from survey.stats import MIN_MEDIAN_RESPONSE_MS
from survey.ui.results import results_show
from tests.survey_fixtures import (
    HUMAN_RESPONSE_MS,
    TRUE_QUALITY,
    image_folder,
    random_clicker,
    set_response_times,
    simulate_ratings,
)

#: The items of each role every simulated rater is given: 4 images × 5 conditions, 2 gold items, 1 trap, 3 training.
GIVEN = {STUDY_IMAGE: 20, GOLD: 2, TRAP: 1, TRAINING: 3}
N_RATERS = 12
BOT_MS = 300
#: What a careful rater gives each condition of the database studies.
CAREFUL = {NEAREST: 1, "bicubic": 3, REFERENCE: 5}


def assigned(raters: range) -> pd.DataFrame:
    """Every rater of ``raters`` given :data:`GIVEN`, as :func:`survey.screening.load_assigned` gives it."""
    return pd.DataFrame([GIVEN] * len(raters), index=pd.Index(raters, name="rater"), columns=list(IMAGE_ROLES))


def acr_answers(seed: int = 1) -> pd.DataFrame:
    """:data:`N_RATERS` simulated raters' answers of every role, each rater tripping one rule:

    0 scores the trap 4 instead of 2; 1 scores gold nearest-neighbour 4; 2 answers in 300 ms; 3 scores every study item
    3; 4 stops halfway; 5 answers 1 of its 3 training items; 6 clicks at random. 7 to 11 are careful.
    """
    rng = np.random.default_rng(seed)
    study = simulate_ratings(rng, n_raters=N_RATERS, n_images=4)
    study = pd.concat([study[study["rater"] != 6], random_clicker(rng, study, 6)])
    study.loc[study["rater"] == 3, "score"] = 3
    study = study.drop(study.index[(study["rater"] == 4) & study["image"].isin(["img0", "img1"])])
    rows = []
    for rater in range(N_RATERS):
        rows += [(rater, GOLD, "gold", NEAREST, 4 if rater == 1 else 1), (rater, GOLD, "gold", REFERENCE, 5)]
        rows += [(rater, TRAP, "trap", TRAP, 4 if rater == 0 else 2)]
        rows += [(rater, TRAINING, "training", "bicubic", 3)] * (1 if rater == 5 else 3)
    others = pd.DataFrame(rows, columns=["rater", "role", "image", "method", "score"])
    answers = pd.concat([study.assign(role=STUDY_IMAGE), others], ignore_index=True)
    expected = np.where(answers["role"] == TRAP, 2.0, np.nan)
    return answers.assign(expected=expected, response_ms=np.where(answers["rater"] == 2, BOT_MS, HUMAN_RESPONSE_MS))


def test_each_acr_rule_rejects_its_rater_and_only_that_one_with_its_reason() -> None:
    table = screen_acr(acr_answers(), assigned(range(N_RATERS)), MIN_MEDIAN_RESPONSE_MS)
    reasons = table["reasons"].tolist()
    assert reasons[:6] == [
        "trap scored 4 (asked for 2)",
        "gold nearest scored 4 (expected 1–2)",
        f"too fast: median {BOT_MS} ms < {MIN_MEDIAN_RESPONSE_MS} ms",
        "no correlation with the MOS (constant scores, or fewer than 2); straight-lining: all 20 scores 3",
        "incomplete: 10 of 20 answered",
        "training not completed: 1 of 3 answered",
    ]
    assert reasons[6].startswith("correlation with the MOS r = ") and reasons[6].endswith(" < 0.75")
    assert reasons[7:] == [""] * 5  # careful raters keep reasons empty
    assert table["status"].tolist() == [REJECTED] * 7 + [ACCEPTED] * 5
    assert table.loc[7:, "r_mos"].min() >= 0.75 and table.loc[6, "r_mos"] < 0.5
    assert table["gold_fail"].tolist() == [False, True] + [False] * 10


def test_the_checks_that_need_no_other_rater_judge_one_raters_answers_alone() -> None:
    answers = acr_answers()

    def own(rater: int, min_view_ms: int = 0) -> list[str]:
        return own_answer_reasons(answers[answers["rater"] == rater].drop(columns="rater"), ACR, min_view_ms)

    assert own(0) == ["trap scored 4 (asked for 2)"]
    assert own(1) == ["gold nearest scored 4 (expected 1–2)"]
    assert own(2) == [f"too fast: median {BOT_MS} ms < {MIN_MEDIAN_RESPONSE_MS} ms"]
    assert own(3) == ["straight-lining: all 20 scores 3"]
    assert own(4) == own(5) == own(6) == own(7) == []  # incomplete and random: what only the other raters show
    slow_study = 3 * HUMAN_RESPONSE_MS  # a study that refuses answers sooner: its threshold moves with it
    assert own(7, slow_study) == [f"too fast: median {HUMAN_RESPONSE_MS} ms < {slow_study + MIN_MEDIAN_RESPONSE_MS} ms"]


def test_fewer_than_ten_equal_scores_are_not_straight_lining() -> None:
    answers = pd.DataFrame(
        {"role": STUDY_IMAGE, "method": "bicubic", "score": 3, "expected": np.nan, "response_ms": HUMAN_RESPONSE_MS},
        index=range(9),
    )
    assert own_answer_reasons(answers, ACR, 0) == []
    assert own_answer_reasons(pd.concat([answers] * 2), ACR, 0) == ["straight-lining: all 18 scores 3"]


def pc_answers(seed: int = 0) -> pd.DataFrame:
    """:data:`N_RATERS` raters comparing every pair of the 5 conditions of :data:`TRUE_QUALITY` on 4 images (40 pairs),
    and a trapping pair (the original against a broken version), each rater tripping one rule:

    0 prefers the broken version; 1 answers in 300 ms; 2 follows the reverse order of quality; 3 follows the order
    but prefers nearest-neighbour to the original (3 of every 10 triads circular, 90 % agreement); 4 stops halfway.
    5 to 11 are careful (quality + their bias + noise of SD 0.6).
    """
    rng = np.random.default_rng(seed)
    quality = pd.Series(TRUE_QUALITY)
    rows = []
    for rater, image in itertools.product(range(N_RATERS), range(4)):
        seen = quality + rng.normal(0, 0.3, len(quality))
        for a, b in itertools.combinations(rng.permutation(quality.index), 2):
            better_a = seen[a] + rng.normal(0, 0.6) > seen[b] + rng.normal(0, 0.6)
            if rater == 2:
                better_a = quality[a] < quality[b]
            elif rater == 3:
                better_a = quality[a] > quality[b] if {a, b} != {NEAREST, REFERENCE} else a == NEAREST
            rows.append((rater, STUDY_IMAGE, f"img{image}", a, b, LEFT if better_a else RIGHT))
    for rater in range(N_RATERS):
        rows.append((rater, TRAP, "trap", REFERENCE, BROKEN, RIGHT if rater == 0 else LEFT))
    answers = pd.DataFrame(rows, columns=["rater", "role", "image", "left", "right", "choice"])
    answers = answers.drop(answers.index[(answers["rater"] == 4) & answers["image"].isin(["img0", "img1"])])
    winner = np.where(answers["choice"] == LEFT, answers["left"], answers["right"])
    ms = np.where(answers["rater"] == 1, BOT_MS, HUMAN_RESPONSE_MS)
    return answers.assign(winner=winner, response_ms=ms).reset_index(drop=True)


def test_each_pc_rule_rejects_its_rater_and_only_that_one_with_its_reason() -> None:
    answers = pc_answers()
    study = answers[answers["role"] == STUDY_IMAGE]
    given = assigned(range(N_RATERS)).assign(study=40, gold=0, training=0)
    table = screen_pc(answers, given, bradley_terry(study, n_resamples=20), MIN_MEDIAN_RESPONSE_MS)
    assert table["reasons"].tolist()[:5] == [
        "trap: preferred the damaged version",
        f"too fast: median {BOT_MS} ms < {MIN_MEDIAN_RESPONSE_MS} ms",
        f"agreement with the majority 0.00 < {MIN_PC_AGREEMENT}",
        f"circular triads: 30% of their triads > {MAX_CIRCULAR_SHARE:.0%}",
        "incomplete: 20 of 40 answered",
    ]
    assert table["status"].tolist() == [REJECTED] * 5 + [ACCEPTED] * 7
    assert (table.loc[5:, "reasons"] == "").all() and table.loc[3, "agreement"] == 0.9
    assert table.loc[5:, "agreement"].min() >= 0.75 and table.loc[5:, "circular_share"].max() <= 0.1
    assert own_answer_reasons(answers[answers["rater"] == 0], PC, 0) == ["trap: preferred the damaged version"]
    assert own_answer_reasons(answers[answers["rater"] == 2], PC, 0) == []  # disagreeing needs the other raters


@pytest.fixture()
def crowd(store: Store, tmp_path: Path) -> str:
    """An ACR crowd study (2 images × bicubic, reference, nearest; 1 trapping item, 2 training items; completion code
    "DONE") answered by 4 raters taking a person's time: careful 0 and 1, 2 who ignores the trap (and scores bicubic 4),
    3 who stops after 3 answers. Returns its name."""
    create_study(
        store, "crowd", image_folder(tmp_path / "hr", n_images=2), ["bicubic"], reference=True, anchors=True,
        completion_code="DONE", crowd=CrowdChecks(traps=1, training_items=2),
    )  # fmt: skip
    with store.session() as session:
        stimuli = session.scalars(select(Stimulus)).all()
        item = {s.public_id: (s.image.role, s.condition.name, s.expected_score) for s in stimuli}
        study_id = session.scalar(select(Stimulus)).image.study.public_id
    for rater in range(4):
        state = start_rater(store, study_id, rng=random.Random(rater), external_id=f"worker-{rater}")
        for answered in itertools.count():
            if state.stimulus is None or (rater == 3 and answered == 3):
                break
            role, condition, expected = item[state.stimulus]
            score = (4 if rater == 2 else expected) if role == TRAP else CAREFUL.get(condition, 3)
            score += rater == 2 and condition == "bicubic"  # and scores bicubic a little higher
            state = submit_rating(store, study_id, state.token, state.stimulus, score or 3)
    set_response_times(store)
    return "crowd"


def test_accepted_codes_hold_exactly_the_accepted_raters_who_finished(store: Store, crowd: str, tmp_path: Path) -> None:
    paths = {path.name: path for path in export_study(store, crowd, tmp_path / "out")}
    raters = pd.read_csv(paths["raters.csv"], keep_default_na=False)
    assert raters["status"].tolist() == [ACCEPTED, ACCEPTED, REJECTED, REJECTED]
    assert raters["reasons"].tolist()[:3] == ["", "", "trap scored 4 (asked for 2)"]
    assert raters["reasons"].iloc[3] == (  # 2 training items, then 1 study item
        "no correlation with the MOS (constant scores, or fewer than 2); incomplete: 1 of 6 answered"
    )
    codes = pd.read_csv(paths["accepted_codes.csv"], keep_default_na=False)
    assert list(codes.columns) == CODES_COLUMNS
    assert codes.values.tolist() == [[1, "worker-0", "DONE"], [2, "worker-1", "DONE"]]
    mos = pd.read_csv(paths["mos_by_method.csv"])
    assert (mos["n_raters"] == 2).all()  # the analysis is of the accepted raters by default


def test_the_loader_gives_one_raters_answers_of_every_role(store: Store, crowd: str) -> None:
    with store.engine.connect() as connection:
        rater, study_id = connection.execute(
            select(Rater.id, Rater.study_id).where(Rater.external_id == "worker-2")
        ).one()
        everyone = load_answers(connection, study_id, ACR)
    with store.session() as session:  # a session serves as well as a connection
        mine = load_answers(session, study_id, ACR, rater=rater)
    assert set(everyone["rater"]) == {1, 2, 3, 4} and set(mine["rater"]) == {rater}
    assert mine["role"].value_counts().to_dict() == {STUDY_IMAGE: 6, TRAINING: 2, TRAP: 1}
    trap = mine[mine["role"] == TRAP].iloc[0]
    assert (trap["score"], trap["expected"]) == (4, 2.0) and mine.loc[mine["role"] != TRAP, "expected"].isna().all()
    assert own_answer_reasons(mine.drop(columns="rater"), ACR, 0) == ["trap scored 4 (asked for 2)"]


def test_the_report_and_the_results_tab_show_agreement_of_all_and_of_accepted_raters(
    store: Store, crowd: str, tmp_path: Path
) -> None:
    view = results_show(store, "pw", "pw", crowd, exclude_flagged=True)
    table = view.tables[AGREEMENT].set_index("raters")
    assert table["n_raters"].to_dict() == {"all": 4, "accepted": 2}
    assert table.loc["accepted", "krippendorff_alpha"] == 1.0  # the careful raters gave the same scores
    assert table.loc["all", "krippendorff_alpha"] < 1.0
    assert "Rejected raters: 3, 4" in view.summary
    page = export_study(store, crowd, tmp_path / "out")[-1].read_text(encoding="utf-8")
    assert "krippendorff_alpha" in page and "Krippendorff" in page and "Exclusions: 2 raters (3, 4) rejected" in page


def test_a_pair_comparison_report_shows_kendalls_coefficients(store: Store, tmp_path: Path) -> None:
    summary = create_study(
        store, "pc", image_folder(tmp_path / "hr", n_images=2), ["bicubic"], reference=True, anchors=True, protocol=PC,
        crowd=CrowdChecks(traps=1),
    )  # fmt: skip
    with store.session() as session:
        condition = {s.public_id: s.condition.name for s in session.scalars(select(Stimulus))}
    rank = {NEAREST: 0, "bicubic": 1, REFERENCE: 2, BROKEN: -1}
    for rater in range(3):
        state = start_rater(store, summary.public_id, rng=random.Random(rater))
        while state.stimulus is not None:
            a, b = (condition[version] for version in state.pair or ())
            worse_wins = rater == 2 and BROKEN in (a, b)  # rater 2 prefers the broken version of the trapping pair
            choice = LEFT if (rank[a] > rank[b]) != worse_wins else RIGHT
            state = submit_choice(store, summary.public_id, state.token, state.stimulus, choice)
    set_response_times(store)
    paths = export_study(store, "pc", tmp_path / "out")
    raters = pd.read_csv(paths[4], keep_default_na=False)
    assert raters["reasons"].tolist() == ["", "", "trap: preferred the damaged version"]
    assert pd.read_csv(paths[3])["rater"].tolist() == [1, 2]
    view = results_show(store, "pw", "pw", "pc", exclude_flagged=True)
    table = view.tables[PC_AGREEMENT].set_index("raters")
    assert table.loc["accepted", "kendall_u"] == 1.0 and table.loc["accepted", "mean_consistence"] == 1.0
    assert "kendall_u" in paths[-1].read_text(encoding="utf-8")
