"""A study's answers and raters as pandas DataFrames, their analysis, and export to CSV files and an HTML report.

CSV files written by :func:`export_study` for an ACR study (one header row, comma-separated, UTF-8):

- ``ratings.csv``: ``rater,image,method,score,response_ms,rated_at,viewport_width,viewport_height,
  device_pixel_ratio,scale,display_ms`` (one row per score; ``rater`` is a number that identifies a rater within the
  export, ``rated_at`` UTC ISO 8601; the last five say how the rater's browser showed the photo, empty where it did
  not say: see :class:`survey.db.ViewingColumns`). Gold items are not in it.
- ``mos_by_method.csv``: ``method,mos,std,n_ratings,n_raters,ci95_low,ci95_high,ci95_low_boot,ci95_high_boot``
  (``ci95_*``: Student t over the scores; ``ci95_*_boot``: two-way cluster bootstrap over raters and images, see
  :func:`survey.stats.cluster_bootstrap`).
- ``mos_by_image.csv``: ``image,method,mos,std,n_ratings,n_raters,ci95_low,ci95_high``.
- ``dmos.csv``: ``method,dmos,std,n_ratings,n_raters,ci95_low,ci95_high`` (header only without a reference).
- ``wilcoxon.csv``: ``method_a,method_b,n_pairs,mean_diff,statistic,p_value,p_holm``.
- ``raters.csv``: ``rater,started_at,finished_at,self_report,external_id,n_ratings,median_response_ms,mean_score,
  p_count,q_count,bt500_reject,r_mos,corr_reject,gold_fail,too_fast,flagged,flag_reason`` (``external_id``: the
  rater's id on the crowd platform that sent them; ``gold_fail``: scored a gold item outside its range;
  ``too_fast``: median response time below the threshold, :func:`survey.stats.speed_check`; ``flag_reason``: why
  the rater is flagged, in words).

For a pair comparison (PC) study:

- ``pc_choices.csv``: ``rater,image,left,right,choice,winner,response_ms,chosen_at`` and the five viewing columns
  of ``ratings.csv`` (one row per choice; ``left`` and ``right`` are the conditions shown as versions A and B,
  ``choice`` is ``left``, ``right`` or ``tie``, ``winner`` the chosen condition, empty for a tie).
- ``pc_scores.csv``: ``method,score,ci95_low,ci95_high,n_comparisons`` (:func:`survey.pairwise.bradley_terry`).
- ``pc_wins.csv``: ``method_a,method_b,wins_a,wins_b,ties,p_holm`` (:func:`survey.pairwise.win_counts`).
- ``raters.csv``: ``rater,started_at,finished_at,self_report,external_id,n_choices,median_response_ms,ties,
  agreement,too_fast,flagged,flag_reason`` (:func:`survey.pairwise.rater_agreement`; the too-fast rule is the only
  one that flags raters here).

Both also get ``report.html``: charts, tables and the study design in one self-contained page (:mod:`survey.report`).

Every CSV file is written by :func:`write_csv`: a text cell that a spreadsheet would run as a formula (it starts with
one of :data:`FORMULA_PREFIXES`, as a crowd id or a self-report may) gets a leading ``'`` (OWASP's rule against CSV
injection); numbers are written as they are.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import aliased

from survey.answers import Viewing
from survey.db import (
    GOLD,
    LEFT,
    PC,
    RIGHT,
    STUDY_IMAGE,
    Choice,
    Condition,
    Rater,
    Rating,
    SourceImage,
    Stimulus,
    Store,
    Trial,
)
from survey.errors import SurveyError
from survey.pairwise import analyse_pairs, rater_agreement
from survey.report import AnalysisT, PairReport, StudyReport, html_report
from survey.stats import MIN_MEDIAN_RESPONSE_MS, analyse, gold_check, screen_raters, speed_check, too_fast_threshold
from survey.studies import get_study, summarize

#: How the browser showed the photo, with every answer (:class:`survey.answers.Viewing`).
VIEWING_COLUMNS = [field.name for field in dataclasses.fields(Viewing)]
RATINGS_COLUMNS = ["rater", "image", "method", "score", "response_ms", "rated_at", *VIEWING_COLUMNS]
RATERS_COLUMNS = [
    "rater", "started_at", "finished_at", "self_report", "external_id", "n_ratings", "median_response_ms",
    "mean_score", "p_count", "q_count", "bt500_reject", "r_mos", "corr_reject", "gold_fail", "too_fast", "flagged",
    "flag_reason",
]  # fmt: skip
CSV_FILES = ("ratings.csv", "mos_by_method.csv", "mos_by_image.csv", "dmos.csv", "wilcoxon.csv", "raters.csv")
CHOICES_COLUMNS = ["rater", "image", "left", "right", "choice", "winner", "response_ms", "chosen_at", *VIEWING_COLUMNS]
PC_RATERS_COLUMNS = [
    *RATERS_COLUMNS[:5], "n_choices", "median_response_ms", "ties", "agreement", "too_fast", "flagged", "flag_reason",
]  # fmt: skip
PC_CSV_FILES = ("pc_choices.csv", "pc_scores.csv", "pc_wins.csv", "raters.csv")
REPORT_FILE = "report.html"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
#: A text cell starting with one of these is one a spreadsheet runs as a formula (``=``, ``+``, ``-``, ``@``) or may
#: (tab, carriage return): :func:`write_csv` puts a ``'`` before it (OWASP, "CSV Injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def load_ratings(store: Store, name: str, role: str = STUDY_IMAGE) -> pd.DataFrame:
    """Every score of study ``name`` given to the versions of its images of ``role`` (:data:`survey.db.IMAGE_ROLES`;
    by default the study's own): columns :data:`RATINGS_COLUMNS`, ordered by time."""
    with store.session() as session:
        study = get_study(session, name)
        rows = session.execute(
            select(
                Rating.rater_id,
                SourceImage.name,
                Condition.name,
                Rating.score,
                Rating.response_ms,
                Rating.created_at,
                *(getattr(Rating, column) for column in VIEWING_COLUMNS),
            )  # fmt: skip
            .join(Stimulus, Rating.stimulus_id == Stimulus.id)
            .join(SourceImage, Stimulus.image_id == SourceImage.id)
            .join(Condition, Stimulus.condition_id == Condition.id)
            .where(SourceImage.study_id == study.id, SourceImage.role == role)
            .order_by(Rating.created_at, Rating.id)
        ).all()
    return pd.DataFrame([tuple(row) for row in rows], columns=RATINGS_COLUMNS)


def load_choices(store: Store, name: str) -> pd.DataFrame:
    """Every choice of pair comparison study ``name``: columns :data:`CHOICES_COLUMNS`, ordered by time."""
    left, right = aliased(Stimulus), aliased(Stimulus)
    left_condition, right_condition = aliased(Condition), aliased(Condition)
    with store.session() as session:
        study = get_study(session, name)
        rows = session.execute(
            select(
                Choice.rater_id,
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
            .where(SourceImage.study_id == study.id)
            .order_by(Choice.created_at, Choice.id)
        ).all()
    choices = pd.DataFrame([tuple(row) for row in rows], columns=[c for c in CHOICES_COLUMNS if c != "winner"])
    choice = choices["choice"]
    winner = np.select([choice == LEFT, choice == RIGHT], [choices["left"], choices["right"]], "")
    choices.insert(CHOICES_COLUMNS.index("winner"), "winner", winner)
    return choices


def rater_rows(store: Store, name: str) -> pd.DataFrame:
    """The raters of study ``name``, indexed by ``rater``: ``started_at``, ``finished_at``, ``self_report``,
    ``external_id``."""
    with store.session() as session:
        study = get_study(session, name)
        rows = session.execute(
            select(Rater.id, Rater.started_at, Rater.finished_at, Rater.self_report, Rater.external_id)
            .where(Rater.study_id == study.id)
            .order_by(Rater.id)
        ).all()
    return pd.DataFrame([tuple(row) for row in rows], columns=RATERS_COLUMNS[:5]).set_index("rater")


def flag_raters(table: pd.DataFrame, rules: Sequence[str], reasons: Sequence[str]) -> pd.DataFrame:
    """``table`` (one row per rater) with its boolean ``rules`` columns as bool (missing: False), ``flagged`` (any rule
    true) and ``flag_reason`` (the non-empty texts of its ``reasons`` columns, joined by "; ")."""
    for column in rules:
        table[column] = table[column].astype("boolean").fillna(False).astype(bool)
    table["flagged"] = table[list(rules)].any(axis=1)
    texts = table[list(reasons)].fillna("").itertuples(index=False)
    table["flag_reason"] = ["; ".join(text for text in row if text) for row in texts]
    return table


def load_raters(
    store: Store, name: str, ratings: pd.DataFrame, gold: pd.DataFrame, min_median_ms: float = MIN_MEDIAN_RESPONSE_MS
) -> pd.DataFrame:
    """The raters of ACR study ``name`` with their screening results (:func:`survey.stats.screen_raters`), their gold
    items (:func:`survey.stats.gold_check`) and their speed (:func:`survey.stats.speed_check` with ``min_median_ms``):
    ``flagged`` by any rule, ``flag_reason`` saying which.

    ``ratings`` and ``gold`` are :func:`load_ratings` of the same study, without and with ``gold``. Columns:
    :data:`RATERS_COLUMNS`; raters who gave no score yet have ``n_ratings`` 0 and are not flagged.
    """
    screening = screen_raters(ratings).drop(columns="flagged").rename(columns={"reason": "screen_reason"})
    golden = gold_check(gold).rename(columns={"reason": "gold_reason"})
    speed = speed_check(ratings, min_median_ms).rename(columns={"reason": "speed_reason"})
    table = rater_rows(store, name).join([screening, golden, speed], how="left")
    for column in ("n_ratings", "p_count", "q_count"):
        table[column] = table[column].fillna(0).astype(int)
    rules = ("bt500_reject", "corr_reject", "gold_fail", "too_fast")
    table = flag_raters(table, rules, ("screen_reason", "gold_reason", "speed_reason"))
    return table.reset_index()[RATERS_COLUMNS]


def load_pc_raters(
    store: Store, name: str, choices: pd.DataFrame, scores: pd.DataFrame, min_median_ms: float = MIN_MEDIAN_RESPONSE_MS
) -> pd.DataFrame:
    """The raters of pair comparison study ``name`` with their agreement with everyone's Bradley–Terry ``scores``
    (:func:`survey.pairwise.rater_agreement`) and their speed (:func:`survey.stats.speed_check` with
    ``min_median_ms``, the one rule that flags them). Columns: :data:`PC_RATERS_COLUMNS`; raters without a choice yet
    have ``n_choices`` 0 and are not flagged."""
    speed = speed_check(choices, min_median_ms).rename(columns={"reason": "speed_reason"})
    table = rater_rows(store, name).join([rater_agreement(choices, scores), speed], how="left")
    for column in ("n_choices", "ties"):
        table[column] = table[column].fillna(0).astype(int)
    return flag_raters(table, ["too_fast"], ["speed_reason"]).reset_index()[PC_RATERS_COLUMNS]


def csv_tables(report: StudyReport | PairReport, exclude_flagged: bool) -> dict[str, pd.DataFrame]:
    """The tables of the CSV files by file name (:data:`CSV_FILES` or :data:`PC_CSV_FILES`); the analysis leaves out
    the flagged raters when ``exclude_flagged`` is set."""
    if isinstance(report, PairReport):
        pairs = report.analysis(exclude_flagged)
        return dict(zip(PC_CSV_FILES, (report.choices, pairs.scores, pairs.wins, report.raters), strict=True))
    analysis = report.analysis(exclude_flagged)
    tables = (report.ratings, analysis.by_method, analysis.by_image, analysis.dmos, analysis.wilcoxon, report.raters)
    return dict(zip(CSV_FILES, tables, strict=True))


def without_flagged(
    answers: pd.DataFrame,
    raters: pd.DataFrame,
    analyse_answers: Callable[[pd.DataFrame], AnalysisT],
    everyone: AnalysisT,
) -> AnalysisT:
    """``analyse_answers`` of the ``answers`` of the raters not flagged in ``raters``; ``everyone`` (the analysis of
    all answers) when no answer is left out."""
    kept = answers[~answers["rater"].isin(raters.loc[raters["flagged"], "rater"])]
    return everyone if len(kept) == len(answers) else analyse_answers(kept)


def study_report(store: Store, name: str, min_median_ms: float | None = None) -> StudyReport | PairReport:
    """Load study ``name`` and analyse it with all raters and without the flagged ones (``min_median_ms``: the
    too-fast rule's threshold, :func:`survey.stats.speed_check`; by default :func:`survey.stats.too_fast_threshold`
    of the study's minimum viewing time)."""
    summary = summarize(store, name)
    if min_median_ms is None:
        min_median_ms = too_fast_threshold(summary.min_view_ms)
    with store.session() as session:
        images = [image.name for image in get_study(session, name).images if image.role == STUDY_IMAGE]
    if summary.protocol == PC:
        choices = load_choices(store, name)
        analysis = analyse_pairs(choices)
        raters = load_pc_raters(store, name, choices, analysis.scores, min_median_ms)
        screened = without_flagged(choices, raters, analyse_pairs, analysis)
        return PairReport(summary, images, raters, all_raters=analysis, screened=screened, choices=choices)
    ratings = load_ratings(store, name)
    raters = load_raters(store, name, ratings, load_ratings(store, name, role=GOLD), min_median_ms)
    everyone = analyse(ratings)
    screened = without_flagged(ratings, raters, analyse, everyone)
    return StudyReport(summary, images, raters, all_raters=everyone, screened=screened, ratings=ratings)


def every_rater_flagged(report: StudyReport | PairReport) -> bool:
    """Whether leaving out the flagged raters leaves no answer at all, though there are answers."""
    answers = report.ratings if isinstance(report, StudyReport) else report.choices
    return not answers.empty and bool(answers["rater"].isin(report.flagged).all())


def write_csv(table: pd.DataFrame, path: Path) -> None:
    """Write ``table`` to CSV file ``path`` (times as :data:`TIME_FORMAT`; lines end in CRLF, as RFC 4180 has it, which
    also makes the writer quote a text holding a lone carriage return), every text cell that starts with one of
    :data:`FORMULA_PREFIXES` preceded by ``'``, so that a spreadsheet shows it as text instead of running it (a crowd id
    ``=HYPERLINK(...)`` or a self-report ``+cmd``). Only text columns are touched: numbers, negative ones too, stay
    numbers."""
    safe = table.copy()
    for column in safe.select_dtypes(include=["object", "string"]).columns:
        safe[column] = safe[column].map(
            lambda cell: f"'{cell}" if isinstance(cell, str) and cell.startswith(FORMULA_PREFIXES) else cell
        )
    safe.to_csv(path, index=False, date_format=TIME_FORMAT, lineterminator="\r\n")


def export_study(
    store: Store,
    name: str,
    out_dir: str | Path,
    exclude_flagged: bool = False,
    min_median_ms: float | None = None,
) -> list[Path]:
    """Write the CSV files of study ``name`` (:data:`CSV_FILES` for ACR, :data:`PC_CSV_FILES` for PC, through
    :func:`write_csv`) and :data:`REPORT_FILE` into ``out_dir`` (created if needed); return their paths.

    The answers and raters files always hold every rater; the other files (MOS, DMOS and Wilcoxon; PC scores and
    wins) and the report are computed without the flagged raters when ``exclude_flagged`` is set;
    :class:`~survey.errors.SurveyError` when that leaves nothing though there are answers (every rater is flagged).
    ``min_median_ms`` is the too-fast rule's threshold (:func:`survey.stats.speed_check`; default: the study's,
    :func:`survey.stats.too_fast_threshold`).
    """
    report = study_report(store, name, min_median_ms)
    if exclude_flagged and every_rater_flagged(report):
        raise SurveyError(
            f"Every rater of {name} who gave a score is flagged (see raters.csv without --exclude-flagged, column "
            "flag_reason): without them nothing is left to export. Export without --exclude-flagged."
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for file_name, table in csv_tables(report, exclude_flagged).items():
        write_csv(table, out / file_name)
        paths.append(out / file_name)
    (out / REPORT_FILE).write_text(html_report(report, exclude_flagged), encoding="utf-8")
    return [*paths, out / REPORT_FILE]
