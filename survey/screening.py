"""Accept or reject each rater of a study, with the reasons in words (ITU-T P.808 style): pure functions on the
answers frame of :func:`load_answers`, and the loaders of that frame and of the items each rater was given.

An answers frame has one row per answer of a rater to an item of any role (:data:`survey.db.IMAGE_ROLES`) with the
columns ``rater``, ``role``, ``image``, ``response_ms`` and, for ACR, ``method`` (the condition), ``score`` and
``expected`` (the score a trapping item asks for, NaN for other items), for pair comparison ``left``, ``right``,
``choice`` and ``winner`` (the chosen condition, "" for a tie). Only the answers to study items (role
:data:`~survey.db.STUDY_IMAGE`) are analysed; the others serve the rules below.

A rater is rejected by any of these rules, accepted otherwise:

- **trap**: an ACR trapping item scored other than the score it asks for; a PC trapping pair where they preferred the
  :data:`~survey.db.BROKEN` (visibly damaged) version;
- **gold** (ACR): a gold item scored outside its range (:func:`survey.stats.gold_check`);
- **too fast**: their median response time on study items is below the threshold (:func:`survey.stats.speed_check`,
  :func:`survey.stats.too_fast_threshold`);
- **straight-lining** (ACR): at least :data:`MIN_STRAIGHT_LINE_SCORES` study scores, all the same;
- **incomplete**: fewer answers than the study items they were given (not finished), or fewer than their training
  items ("training not completed");
- **low agreement**: ACR, the correlation of their scores with the MOS below 0.75 (:func:`survey.stats.screen_raters`,
  ITU-T P.808/P.913); PC, the share of their choices for the method all raters prefer below :data:`MIN_PC_AGREEMENT`
  (:func:`survey.pairwise.rater_agreement`);
- **circular triads** (PC): more than :data:`MAX_CIRCULAR_SHARE` of the triads of methods they compared on one image
  (without a tie) are circular (A over B, B over C, C over A; :func:`survey.agreement.consistence`).

The first four need no other rater: :func:`own_answer_reasons` applies them to one rater's answers, to decide whether
a rater who finishes is shown the completion code (``Study.withhold_code``). The BT.500 rule of
:func:`survey.stats.screen_raters` is reported beside (``bt500_reject``) but rejects nobody: it is meant for lab panels
that score every presentation, and P.808 uses the correlation rule for crowd studies.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import comb

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Select, func, select
from sqlalchemy.orm import Session, aliased

from survey.agreement import consistence
from survey.db import (
    ACR,
    BROKEN,
    GOLD,
    IMAGE_ROLES,
    LEFT,
    PC,
    RIGHT,
    STUDY_IMAGE,
    TIE,
    TRAINING,
    TRAP,
    Assignment,
    Choice,
    Condition,
    Rater,
    Rating,
    SourceImage,
    Stimulus,
    Trial,
    ViewingColumns,
)
from survey.pairwise import methods_of, rater_agreement
from survey.stats import correlation_reason, gold_check, screen_raters, speed_check, too_fast_threshold

ACCEPTED, REJECTED = "accepted", "rejected"
#: How the browser showed the photo, with every answer (:class:`survey.db.ViewingColumns`).
VIEWING_COLUMNS = list(ViewingColumns.__annotations__)
ACR_ANSWER_COLUMNS = [
    "rater", "role", "image", "method", "score", "expected", "response_ms", "rated_at", *VIEWING_COLUMNS,
]  # fmt: skip
PC_ANSWER_COLUMNS = [
    "rater", "role", "image", "left", "right", "choice", "winner", "response_ms", "chosen_at", *VIEWING_COLUMNS,
]  # fmt: skip
#: Straight-lining: a rater who gave at least this many study scores, all the same, is rejected. A study's items span
#: the scale (most have a hidden reference and a low anchor), so ten equal scores from someone looking are unlikely;
#: fewer say too little.
MIN_STRAIGHT_LINE_SCORES = 10
#: PC low agreement: reject a rater whose choices agree with the methods' order over all raters less often than this.
#: Chance is 0.5 (a random clicker with 100 choices stays below 0.6 98 % of the time); attentive simulated raters in a
#: study of five conditions across the scale agreed 0.75–0.95.
MIN_PC_AGREEMENT = 0.6
#: PC transitivity: reject a rater more than this share of whose triads (three methods on one image) are circular.
#: Choosing at random makes a quarter of them circular; attentive simulated raters in a study of five conditions across
#: the scale made 2–13 %. Where every condition is close to the others, attentive raters come near chance on this rule
#: and on agreement.
MAX_CIRCULAR_SHARE = 0.2


def load_answers(db: Connection | Session, study_id: int, protocol: str, rater: int | None = None) -> pd.DataFrame:
    """Every answer of study ``study_id`` (``protocol``: :data:`~survey.db.ACR` or :data:`~survey.db.PC`) to items of
    every role, or only rater ``rater``'s (a rater id): columns :data:`ACR_ANSWER_COLUMNS` or
    :data:`PC_ANSWER_COLUMNS` (``rated_at``/``chosen_at`` naive UTC), ordered by time."""
    query = acr_query(study_id) if protocol == ACR else pc_query(study_id)
    if rater is not None:
        query = query.where((Rating.rater_id if protocol == ACR else Choice.rater_id) == rater)
    rows = [tuple(row) for row in db.execute(query).all()]
    if protocol == ACR:
        answers = pd.DataFrame(rows, columns=ACR_ANSWER_COLUMNS)
        return answers.assign(expected=answers["expected"].astype(float))
    answers = pd.DataFrame(rows, columns=[c for c in PC_ANSWER_COLUMNS if c != "winner"])
    choice = answers["choice"]
    winner = np.select([choice == LEFT, choice == RIGHT], [answers["left"], answers["right"]], "")
    answers.insert(PC_ANSWER_COLUMNS.index("winner"), "winner", winner)
    return answers


def acr_query(study_id: int) -> Select:
    """The query of :func:`load_answers` for an ACR study."""
    return (
        select(
            Rating.rater_id,
            SourceImage.role,
            SourceImage.name,
            Condition.name,
            Rating.score,
            Stimulus.expected_score,
            Rating.response_ms,
            Rating.created_at,
            *(getattr(Rating, column) for column in VIEWING_COLUMNS),
        )  # fmt: skip
        .join(Stimulus, Rating.stimulus_id == Stimulus.id)
        .join(SourceImage, Stimulus.image_id == SourceImage.id)
        .join(Condition, Stimulus.condition_id == Condition.id)
        .where(SourceImage.study_id == study_id)
        .order_by(Rating.created_at, Rating.id)
    )


def pc_query(study_id: int) -> Select:
    """The query of :func:`load_answers` for a pair comparison study (without ``winner``)."""
    left, right = aliased(Stimulus), aliased(Stimulus)
    left_condition, right_condition = aliased(Condition), aliased(Condition)
    return (
        select(
            Choice.rater_id,
            SourceImage.role,
            SourceImage.name,
            left_condition.name,
            right_condition.name,
            Choice.choice,
            Choice.response_ms,
            Choice.created_at,
            *(getattr(Choice, column) for column in VIEWING_COLUMNS),
        )  # fmt: skip
        .join(Trial, (Choice.rater_id == Trial.rater_id) & (Choice.position == Trial.position))
        .join(left, Trial.left_id == left.id)
        .join(right, Trial.right_id == right.id)
        .join(SourceImage, left.image_id == SourceImage.id)
        .join(left_condition, left.condition_id == left_condition.id)
        .join(right_condition, right.condition_id == right_condition.id)
        .where(SourceImage.study_id == study_id)
        .order_by(Choice.created_at, Choice.id)
    )


def load_assigned(db: Connection | Session, study_id: int, protocol: str) -> pd.DataFrame:
    """How many items of each role every rater of study ``study_id`` was given (stimuli for ACR, pairs for PC): one row
    per rater, indexed by ``rater`` (rater ids, in order), one column per role of :data:`~survey.db.IMAGE_ROLES`."""
    if protocol == ACR:
        rater_id, stimulus_id = Assignment.rater_id, Assignment.stimulus_id
    else:
        rater_id, stimulus_id = Trial.rater_id, Trial.left_id
    counts = db.execute(
        select(rater_id, SourceImage.role, func.count())
        .join(Stimulus, stimulus_id == Stimulus.id)
        .join(SourceImage, Stimulus.image_id == SourceImage.id)
        .where(SourceImage.study_id == study_id)
        .group_by(rater_id, SourceImage.role)
    ).all()
    raters = db.scalars(select(Rater.id).where(Rater.study_id == study_id).order_by(Rater.id)).all()
    table = pd.DataFrame([tuple(row) for row in counts], columns=["rater", "role", "n"])
    wide = table.pivot_table(index="rater", columns="role", values="n", aggfunc="sum")
    return wide.reindex(index=pd.Index(raters, name="rater"), columns=list(IMAGE_ROLES)).fillna(0).astype(int)


def of_role(answers: pd.DataFrame, role: str) -> pd.DataFrame:
    """The answers to items of ``role``."""
    return answers[answers["role"] == role]


def trap_check(answers: pd.DataFrame, protocol: str) -> pd.DataFrame:
    """Raters who failed a trapping item: ACR, scored one other than its ``expected`` score; PC, preferred its
    :data:`~survey.db.BROKEN` version. One row per rater who answered one, indexed by ``rater``: ``trap_fail`` and
    ``reason`` ("" when none failed)."""
    traps = of_role(answers, TRAP)
    if protocol == ACR:
        failed = traps[traps["score"] != traps["expected"]]
        pairs = zip(failed["score"], failed["expected"], strict=True)
        text = [f"trap scored {score} (asked for {expected:.0f})" for score, expected in pairs]
    else:
        failed = traps[traps["winner"] == BROKEN]
        text = ["trap: preferred the damaged version"] * len(failed)
    reasons = pd.Series(text, index=failed["rater"], dtype=str).groupby(level=0).agg("; ".join)
    raters = pd.Index(sorted(traps["rater"].unique()), name="rater")
    return pd.DataFrame({"trap_fail": raters.isin(reasons.index), "reason": reasons.reindex(raters, fill_value="")})


def straight_lining_check(study: pd.DataFrame) -> pd.DataFrame:
    """Raters whose ACR ``study`` scores are all the same (zero variance) over at least
    :data:`MIN_STRAIGHT_LINE_SCORES` of them. One row per rater, indexed by ``rater``: ``straight_lining`` and
    ``reason`` ("" when not)."""
    scores = study.groupby("rater")["score"].agg(["size", "nunique", "first"])
    flat = (scores["size"] >= MIN_STRAIGHT_LINE_SCORES) & (scores["nunique"] == 1)
    reasons = [
        f"straight-lining: all {n} scores {score}" if line else ""
        for n, score, line in zip(scores["size"], scores["first"], flat, strict=True)
    ]
    return pd.DataFrame({"straight_lining": flat, "reason": reasons}, index=scores.index)


def incomplete_check(answers: pd.DataFrame, assigned: pd.DataFrame) -> pd.DataFrame:
    """Raters of ``assigned`` (:func:`load_assigned`) who answered fewer study items than they were given, or fewer
    training items. One row per rater, indexed by ``rater``: ``incomplete`` and ``reason`` ("" when complete)."""
    counts = answers.groupby(["rater", "role"]).size().unstack(fill_value=0)
    answered = counts.reindex(index=assigned.index, columns=assigned.columns, fill_value=0)
    reasons = [
        "; ".join(
            text
            for text, missing in (
                (f"incomplete: {done} of {given} answered", done < given),
                (f"training not completed: {trained} of {training} answered", trained < training),
            )
            if missing
        )
        for done, given, trained, training in zip(
            answered[STUDY_IMAGE], assigned[STUDY_IMAGE], answered[TRAINING], assigned[TRAINING], strict=True
        )
    ]
    return pd.DataFrame({"incomplete": [bool(text) for text in reasons], "reason": reasons}, index=assigned.index)


def correlation_check(study: pd.DataFrame) -> pd.DataFrame:
    """:func:`survey.stats.screen_raters` of the ACR ``study`` answers, without ``flagged``, its ``reason`` that of the
    correlation rule alone (:func:`survey.stats.correlation_reason`)."""
    table = screen_raters(study).drop(columns="flagged")
    return table.assign(reason=[correlation_reason(row) for row in table.itertuples()])


def pc_agreement_check(study: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """:func:`survey.pairwise.rater_agreement` of the PC ``study`` answers with the Bradley–Terry ``scores`` of all
    raters, with ``reason`` when the agreement is below :data:`MIN_PC_AGREEMENT` or undefined (only ties)."""
    table = rater_agreement(study, scores)
    reasons = [
        "" if share >= MIN_PC_AGREEMENT
        else "only 'no difference' answers" if np.isnan(share)
        else f"agreement with the majority {share:.2f} < {MIN_PC_AGREEMENT}"
        for share in table["agreement"]
    ]  # fmt: skip
    return table.assign(reason=reasons)


def transitivity_check(study: pd.DataFrame) -> pd.DataFrame:
    """Circular triads in each rater's PC ``study`` choices (A over B, B over C, C over A among three methods on one
    image; :func:`survey.agreement.consistence`), over the images on which they chose in every pair without a tie (a
    tie is not a circle, yet counts as part of one there): ``circular_share`` (of all triads of those images) and
    ``reason`` when it is above :data:`MAX_CIRCULAR_SHARE`. Indexed by ``rater``; NaN with fewer than 3 methods."""
    tournaments = consistence(study[study["choice"] != TIE])
    triads = tournaments["n_images"] * comb(len(methods_of(study)), 3)
    share = tournaments["circular_triads"] / triads.where(triads > 0)
    reasons = [
        f"circular triads: {part:.0%} of their triads > {MAX_CIRCULAR_SHARE:.0%}" if part > MAX_CIRCULAR_SHARE else ""
        for part in share
    ]
    return pd.DataFrame({"circular_share": share, "reason": reasons}, index=tournaments.index)


def own_checks(answers: pd.DataFrame, protocol: str, min_median_ms: float) -> list[pd.DataFrame]:
    """The rules that need no other rater, each a table indexed by ``rater`` with a ``reason`` column: gold (ACR),
    too fast (median below ``min_median_ms``), trap, straight-lining (ACR)."""
    study = of_role(answers, STUDY_IMAGE)
    speed = speed_check(study, min_median_ms)
    if protocol == PC:
        return [speed, trap_check(answers, PC)]
    return [gold_check(of_role(answers, GOLD)), speed, trap_check(answers, ACR), straight_lining_check(study)]


def reasons_of(checks: Sequence[pd.DataFrame], raters: pd.Index) -> pd.Series:
    """The ``reason`` texts of ``checks`` for each of ``raters``, non-empty ones joined by "; " ("" for none)."""
    texts = pd.concat([check["reason"].reindex(raters, fill_value="") for check in checks], axis=1).fillna("")
    return pd.Series(["; ".join(text for text in row if text) for row in texts.itertuples(index=False)], index=raters)


def own_answer_reasons(answers: pd.DataFrame, protocol: str, min_view_ms: int) -> list[str]:
    """Why one rater's ``answers`` (of every role, as :func:`load_answers` gives them for one rater; ``rater`` not
    needed) fail the rules that need no other rater (trap, gold, too fast, straight-lining), in words; empty when they
    pass. ``min_view_ms`` is the study's minimum viewing time (:func:`survey.stats.too_fast_threshold`)."""
    checks = own_checks(answers.assign(rater=0), protocol, too_fast_threshold(min_view_ms))
    return [text for check in checks for text in check["reason"] if text]


def screen_acr(answers: pd.DataFrame, assigned: pd.DataFrame, min_median_ms: float) -> pd.DataFrame:
    """Accept or reject every rater of an ACR study's ``assigned`` (:func:`load_assigned`) by their ``answers``
    (``min_median_ms``: the too-fast threshold): :func:`decide` of the correlation rule, the rules of
    :func:`own_checks` and the incomplete rule."""
    checks = [correlation_check(of_role(answers, STUDY_IMAGE)), *own_checks(answers, ACR, min_median_ms)]
    return decide([*checks, incomplete_check(answers, assigned)], assigned.index)


def screen_pc(
    answers: pd.DataFrame, assigned: pd.DataFrame, scores: pd.DataFrame, min_median_ms: float
) -> pd.DataFrame:
    """Accept or reject every rater of a pair comparison study's ``assigned`` (:func:`load_assigned`) by their
    ``answers`` (``scores``: the Bradley–Terry scores of all raters, :func:`survey.pairwise.bradley_terry`;
    ``min_median_ms``: the too-fast threshold): :func:`decide` of the agreement and transitivity rules, the rules of
    :func:`own_checks` and the incomplete rule."""
    study = of_role(answers, STUDY_IMAGE)
    checks = [pc_agreement_check(study, scores), transitivity_check(study), *own_checks(answers, PC, min_median_ms)]
    return decide([*checks, incomplete_check(answers, assigned)], assigned.index)


def decide(checks: Sequence[pd.DataFrame], raters: pd.Index) -> pd.DataFrame:
    """One row per rater of ``raters``: the columns of every rule's table in ``checks`` (the figures behind it; NaN for
    a rater it has no row for), ``status`` (:data:`REJECTED` when any rule gives a reason, else :data:`ACCEPTED`) and
    ``reasons`` (:func:`reasons_of`)."""
    reasons = reasons_of(checks, raters)
    table = pd.concat([check.drop(columns="reason") for check in checks], axis=1).reindex(raters)
    return table.assign(status=np.where(reasons != "", REJECTED, ACCEPTED), reasons=reasons)
