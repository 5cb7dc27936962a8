"""A study's answers and raters as pandas DataFrames, their analysis, and export to CSV files and an HTML report.

CSV files written by :func:`export_study` for an ACR study (one header row, comma-separated, UTF-8):

- ``ratings.csv``: ``rater,image,method,score,response_ms,rated_at,viewport_width,viewport_height,
  device_pixel_ratio,scale,display_ms`` (one row per score; ``rater`` is a number that identifies a rater within the
  export, ``rated_at`` UTC ISO 8601; the last five say how the rater's browser showed the photo, empty where it did
  not say: see :class:`survey.db.ViewingColumns`). Gold, trapping and training items are not in it.
- ``mos_by_method.csv``: ``method,mos,std,n_ratings,n_raters,ci95_low,ci95_high,ci95_low_boot,ci95_high_boot``
  (``ci95_*``: Student t over the scores; ``ci95_*_boot``: two-way cluster bootstrap over raters and images, see
  :func:`survey.stats.cluster_bootstrap`).
- ``mos_by_image.csv``: ``image,method,mos,std,n_ratings,n_raters,ci95_low,ci95_high``.
- ``dmos.csv``: ``method,dmos,std,n_ratings,n_raters,ci95_low,ci95_high`` (header only without a reference).
- ``wilcoxon.csv``: ``method_a,method_b,n_pairs,mean_diff,statistic,p_value,p_holm``.
- ``accepted_codes.csv``: ``rater,external_id,completion_code``: the accepted raters who finished, with the study's
  completion code they were shown (empty without one), to approve on the crowd platform.
- ``raters.csv``: ``rater,started_at,finished_at,self_report,external_id,n_ratings,median_response_ms,mean_score,
  p_count,q_count,bt500_reject,r_mos,corr_reject,gold_fail,too_fast,flagged,flag_reason,status,reasons``
  (``external_id``: the rater's id on the crowd platform that sent them; ``r_mos``, ``corr_reject``: the correlation
  rule; ``bt500_reject``: the BT.500 rule, reported only; ``gold_fail``: scored a gold item outside its range;
  ``too_fast``: median response time below the threshold, :func:`survey.stats.speed_check`; ``status``: ``accepted``
  or ``rejected`` by the rules of :mod:`survey.screening`, ``reasons`` why, in words, "" when accepted; ``flagged``
  and ``flag_reason``, kept for scripts written before them, say the same: rejected, and why).

For a pair comparison (PC) study:

- ``pc_choices.csv``: ``rater,image,left,right,choice,winner,response_ms,chosen_at`` and the five viewing columns
  of ``ratings.csv`` (one row per choice; ``left`` and ``right`` are the conditions shown as versions A and B,
  ``choice`` is ``left``, ``right`` or ``tie``, ``winner`` the chosen condition, empty for a tie). Trapping and
  training pairs are not in it.
- ``pc_scores.csv``: ``method,score,ci95_low,ci95_high,n_comparisons`` (:func:`survey.pairwise.bradley_terry`).
- ``pc_wins.csv``: ``method_a,method_b,wins_a,wins_b,ties,p_holm`` (:func:`survey.pairwise.win_counts`).
- ``accepted_codes.csv``, as for ACR.
- ``raters.csv``: ``rater,started_at,finished_at,self_report,external_id,n_choices,median_response_ms,ties,
  agreement,circular_share,too_fast,flagged,flag_reason,status,reasons`` (``agreement``:
  :func:`survey.pairwise.rater_agreement`; ``circular_share``: the share of their triads of methods on one image
  that are circular, :func:`survey.screening.transitivity_check`; the rest as for ACR).

Both also get ``report.html``: charts, tables and the study design in one self-contained page (:mod:`survey.report`).
The analysis files and the report leave out the rejected raters by default (``exclude_flagged``); the answers and
raters files always hold every rater.

Every CSV file is written by :func:`sr_app.csv_files.write_csv`: a text cell that a spreadsheet would run as a
formula (it starts with one of :data:`~sr_app.csv_files.FORMULA_PREFIXES`, as a crowd id or a self-report may) gets a
leading ``'`` (OWASP's rule against CSV injection); numbers are written as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from sr_app.csv_files import write_csv
from survey.db import ACR, PC, STUDY_IMAGE, Rater, Store
from survey.errors import SurveyError
from survey.pairwise import analyse_pairs
from survey.report import AnalysisT, PairReport, StudyReport, html_report
from survey.screening import (
    ACCEPTED,
    REJECTED,
    VIEWING_COLUMNS,
    load_answers,
    load_assigned,
    of_role,
    screen_acr,
    screen_pc,
)
from survey.stats import analyse, too_fast_threshold
from survey.studies import get_study, summarize

RATINGS_COLUMNS = ["rater", "image", "method", "score", "response_ms", "rated_at", *VIEWING_COLUMNS]
RATERS_COLUMNS = [
    "rater", "started_at", "finished_at", "self_report", "external_id", "n_ratings", "median_response_ms",
    "mean_score", "p_count", "q_count", "bt500_reject", "r_mos", "corr_reject", "gold_fail", "too_fast", "flagged",
    "flag_reason", "status", "reasons",
]  # fmt: skip
CODES_FILE = "accepted_codes.csv"
CODES_COLUMNS = ["rater", "external_id", "completion_code"]
CSV_FILES = (
    "ratings.csv", "mos_by_method.csv", "mos_by_image.csv", "dmos.csv", "wilcoxon.csv", CODES_FILE, "raters.csv",
)  # fmt: skip
CHOICES_COLUMNS = ["rater", "image", "left", "right", "choice", "winner", "response_ms", "chosen_at", *VIEWING_COLUMNS]
PC_RATERS_COLUMNS = [
    *RATERS_COLUMNS[:5], "n_choices", "median_response_ms", "ties", "agreement", "circular_share", "too_fast",
    "flagged", "flag_reason", "status", "reasons",
]  # fmt: skip
PC_CSV_FILES = ("pc_choices.csv", "pc_scores.csv", "pc_wins.csv", CODES_FILE, "raters.csv")
REPORT_FILE = "report.html"
#: The rules' figures that count something: 0, not missing, for a rater without answers.
COUNT_COLUMNS = ("n_ratings", "p_count", "q_count", "n_choices", "ties")
#: The rules' yes/no figures: False, not missing, for a rater without answers.
RULE_COLUMNS = ("bt500_reject", "corr_reject", "gold_fail", "too_fast")


def load_ratings(store: Store, name: str, role: str = STUDY_IMAGE) -> pd.DataFrame:
    """Every score of study ``name`` given to the versions of its images of ``role`` (:data:`survey.db.IMAGE_ROLES`;
    by default the study's own): columns :data:`RATINGS_COLUMNS`, ordered by time."""
    with store.session() as session:
        answers = load_answers(session, get_study(session, name).id, ACR)
    return of_role(answers, role)[RATINGS_COLUMNS].reset_index(drop=True)


def study_choices(answers: pd.DataFrame) -> pd.DataFrame:
    """The choices of a pair comparison study's ``answers`` (:func:`survey.screening.load_answers`) on its own images:
    columns :data:`CHOICES_COLUMNS`, in the order of ``answers``."""
    return of_role(answers, STUDY_IMAGE)[CHOICES_COLUMNS].reset_index(drop=True)


def rater_rows(session: Session, study_id: int) -> pd.DataFrame:
    """The raters of study ``study_id``, indexed by ``rater``: ``started_at``, ``finished_at``, ``self_report``,
    ``external_id``."""
    rows = session.execute(
        select(Rater.id, Rater.started_at, Rater.finished_at, Rater.self_report, Rater.external_id)
        .where(Rater.study_id == study_id)
        .order_by(Rater.id)
    ).all()
    return pd.DataFrame([tuple(row) for row in rows], columns=RATERS_COLUMNS[:5]).set_index("rater")


def raters_table(people: pd.DataFrame, screening: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``people`` (:func:`rater_rows`) with their ``screening`` (:func:`survey.screening.screen_acr` or
    :func:`~survey.screening.screen_pc`) and ``flagged``/``flag_reason`` (the same as rejected and ``reasons``):
    ``columns``, counts 0 and rules False for a rater without answers."""
    table = people.join(screening.drop(columns=people.columns.intersection(screening.columns)), how="left")
    for column in table.columns.intersection(COUNT_COLUMNS):
        table[column] = table[column].fillna(0).astype(int)
    for column in table.columns.intersection(RULE_COLUMNS):
        table[column] = table[column].astype("boolean").fillna(False).astype(bool)
    table = table.assign(flagged=table["status"] == REJECTED, flag_reason=table["reasons"])
    return table.reset_index()[columns]


def accepted_codes(raters: pd.DataFrame, completion_code: str | None) -> pd.DataFrame:
    """The accepted ``raters`` (a raters table) who finished, with the ``completion_code`` they were shown ("" without
    one): columns :data:`CODES_COLUMNS`."""
    done = raters[(raters["status"] == ACCEPTED) & raters["finished_at"].notna()]
    return done[CODES_COLUMNS[:2]].assign(completion_code=completion_code or "").reset_index(drop=True)


def csv_tables(report: StudyReport | PairReport, exclude_flagged: bool) -> dict[str, pd.DataFrame]:
    """The tables of the CSV files by file name (:data:`CSV_FILES` or :data:`PC_CSV_FILES`); the analysis leaves out
    the rejected raters when ``exclude_flagged`` is set."""
    codes = accepted_codes(report.raters, report.summary.completion_code)
    if isinstance(report, PairReport):
        pairs = report.analysis(exclude_flagged)
        tables = (report.choices, pairs.scores, pairs.wins, codes, report.raters)
        return dict(zip(PC_CSV_FILES, tables, strict=True))
    analysis = report.analysis(exclude_flagged)
    tables = (
        report.ratings, analysis.by_method, analysis.by_image, analysis.dmos, analysis.wilcoxon, codes, report.raters,
    )  # fmt: skip
    return dict(zip(CSV_FILES, tables, strict=True))


def without_rejected(
    answers: pd.DataFrame,
    raters: pd.DataFrame,
    analyse_answers: Callable[[pd.DataFrame], AnalysisT],
    everyone: AnalysisT,
) -> AnalysisT:
    """``analyse_answers`` of the ``answers`` of the raters not rejected in ``raters``; ``everyone`` (the analysis of
    all answers) when no answer is left out."""
    kept = answers[~answers["rater"].isin(raters.loc[raters["status"] == REJECTED, "rater"])]
    return everyone if len(kept) == len(answers) else analyse_answers(kept)


def study_report(store: Store, name: str, min_median_ms: float | None = None) -> StudyReport | PairReport:
    """Load study ``name``, accept or reject its raters (:mod:`survey.screening`; ``min_median_ms``: the too-fast
    rule's threshold, :func:`survey.stats.speed_check`, by default :func:`survey.stats.too_fast_threshold` of the
    study's minimum viewing time) and analyse it with all raters and with the accepted ones."""
    summary = summarize(store, name)
    if min_median_ms is None:
        min_median_ms = too_fast_threshold(summary.min_view_ms)
    with store.session() as session:
        study = get_study(session, name)
        images = [image.name for image in study.images if image.role == STUDY_IMAGE]
        answers = load_answers(session, study.id, summary.protocol)
        assigned = load_assigned(session, study.id, summary.protocol)
        people = rater_rows(session, study.id)
    if summary.protocol == PC:
        choices = study_choices(answers)
        analysis = analyse_pairs(choices)
        screening = screen_pc(answers, assigned, analysis.scores, min_median_ms)
        raters = raters_table(people, screening, PC_RATERS_COLUMNS)
        screened = without_rejected(choices, raters, analyse_pairs, analysis)
        return PairReport(summary, images, raters, all_raters=analysis, screened=screened, choices=choices)
    ratings = of_role(answers, STUDY_IMAGE)[RATINGS_COLUMNS].reset_index(drop=True)
    raters = raters_table(people, screen_acr(answers, assigned, min_median_ms), RATERS_COLUMNS)
    everyone = analyse(ratings)
    screened = without_rejected(ratings, raters, analyse, everyone)
    return StudyReport(summary, images, raters, all_raters=everyone, screened=screened, ratings=ratings)


def every_rater_rejected(report: StudyReport | PairReport) -> bool:
    """Whether leaving out the rejected raters leaves no answer at all, though there are answers."""
    answers = report.ratings if isinstance(report, StudyReport) else report.choices
    return not answers.empty and bool(answers["rater"].isin(report.rejected).all())


def export_study(
    store: Store,
    name: str,
    out_dir: str | Path,
    exclude_flagged: bool = True,
    min_median_ms: float | None = None,
) -> list[Path]:
    """Write the CSV files of study ``name`` (:data:`CSV_FILES` for ACR, :data:`PC_CSV_FILES` for PC, through
    :func:`sr_app.csv_files.write_csv`) and :data:`REPORT_FILE` into ``out_dir`` (created if needed); return their
    paths.

    The answers and raters files always hold every rater; the other files (MOS, DMOS and Wilcoxon; PC scores and
    wins) and the report are computed without the rejected raters (:mod:`survey.screening`) when ``exclude_flagged``
    is set, as by default, the report showing the figures of all raters beside;
    :class:`~survey.errors.SurveyError` when that leaves nothing though there are answers (every rater is rejected).
    ``min_median_ms`` is the too-fast rule's threshold (:func:`survey.stats.speed_check`; default: the study's,
    :func:`survey.stats.too_fast_threshold`).
    """
    report = study_report(store, name, min_median_ms)
    if exclude_flagged and every_rater_rejected(report):
        raise SurveyError(
            f"Every rater of {name} who gave a score is rejected (see the column reasons of raters.csv, exported "
            "with --all-raters): without them nothing is left to export. Export with --all-raters."
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for file_name, table in csv_tables(report, exclude_flagged).items():
        write_csv(table, out / file_name)
        paths.append(out / file_name)
    (out / REPORT_FILE).write_text(html_report(report, exclude_flagged), encoding="utf-8")
    return [*paths, out / REPORT_FILE]
