"""A study's ratings and raters as pandas DataFrames, their analysis, and CSV export.

CSV files written by :func:`export_study` (one header row, comma-separated, UTF-8):

- ``ratings.csv``: ``rater,image,method,score,response_ms,rated_at`` (one row per score; ``rater`` is a number
  that identifies a rater within the export, ``rated_at`` UTC ISO 8601).
- ``mos_by_method.csv``: ``method,mos,std,n_ratings,n_raters,ci95_low,ci95_high,ci95_low_boot,ci95_high_boot``
  (``ci95_*``: Student t over the scores; ``ci95_*_boot``: two-way cluster bootstrap over raters and images, see
  :func:`survey.stats.cluster_bootstrap`).
- ``mos_by_image.csv``: ``image,method,mos,std,n_ratings,n_raters,ci95_low,ci95_high``.
- ``dmos.csv``: ``method,dmos,std,n_ratings,n_raters,ci95_low,ci95_high`` (header only without a reference).
- ``wilcoxon.csv``: ``method_a,method_b,n_pairs,mean_diff,statistic,p_value,p_holm``.
- ``raters.csv``: ``rater,started_at,finished_at,self_report,n_ratings,median_response_ms,mean_score,p_count,
  q_count,bt500_reject,r_mos,corr_reject,flagged``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sqlalchemy import select

from survey.db import Condition, Rater, Rating, SourceImage, Stimulus, Store
from survey.stats import Analysis, analyse, screen_raters
from survey.studies import get_study

RATINGS_COLUMNS = ["rater", "image", "method", "score", "response_ms", "rated_at"]
RATERS_COLUMNS = [
    "rater", "started_at", "finished_at", "self_report", "n_ratings", "median_response_ms", "mean_score",
    "p_count", "q_count", "bt500_reject", "r_mos", "corr_reject", "flagged",
]  # fmt: skip
CSV_FILES = ("ratings.csv", "mos_by_method.csv", "mos_by_image.csv", "dmos.csv", "wilcoxon.csv", "raters.csv")


def load_ratings(store: Store, name: str) -> pd.DataFrame:
    """Every score of study ``name``: columns :data:`RATINGS_COLUMNS`, ordered by time."""
    with store.session() as session:
        study = get_study(session, name)
        rows = session.execute(
            select(
                Rating.rater_id, SourceImage.name, Condition.name, Rating.score, Rating.response_ms, Rating.created_at
            )
            .join(Stimulus, Rating.stimulus_id == Stimulus.id)
            .join(SourceImage, Stimulus.image_id == SourceImage.id)
            .join(Condition, Stimulus.condition_id == Condition.id)
            .where(SourceImage.study_id == study.id)
            .order_by(Rating.created_at, Rating.id)
        ).all()
    return pd.DataFrame([tuple(row) for row in rows], columns=RATINGS_COLUMNS)


def load_raters(store: Store, name: str, ratings: pd.DataFrame) -> pd.DataFrame:
    """The raters of study ``name`` with their screening results (see :func:`survey.stats.screen_raters`).

    ``ratings`` is :func:`load_ratings` of the same study. Columns: :data:`RATERS_COLUMNS`; raters who gave no
    score yet have ``n_ratings`` 0 and are not flagged.
    """
    with store.session() as session:
        study = get_study(session, name)
        rows = session.execute(
            select(Rater.id, Rater.started_at, Rater.finished_at, Rater.self_report)
            .where(Rater.study_id == study.id)
            .order_by(Rater.id)
        ).all()
    raters = pd.DataFrame([tuple(row) for row in rows], columns=RATERS_COLUMNS[:4]).set_index("rater")
    screening = screen_raters(ratings) if len(ratings) else pd.DataFrame(columns=RATERS_COLUMNS[4:])
    screening["median_response_ms"] = ratings.groupby("rater")["response_ms"].median()
    table = raters.join(screening, how="left")
    table["n_ratings"] = table["n_ratings"].fillna(0).astype(int)
    for column in ("p_count", "q_count"):
        table[column] = table[column].fillna(0).astype(int)
    for column in ("bt500_reject", "corr_reject", "flagged"):
        table[column] = table[column].astype("boolean").fillna(False).astype(bool)
    return table.reset_index()[RATERS_COLUMNS]


@dataclass(frozen=True)
class StudyReport:
    """Everything the Results tab shows: the raw tables, and the analysis with and without flagged raters."""

    ratings: pd.DataFrame
    raters: pd.DataFrame
    all_raters: Analysis
    screened: Analysis

    @property
    def flagged(self) -> list[int]:
        return self.raters.loc[self.raters["flagged"], "rater"].tolist()


def study_report(store: Store, name: str) -> StudyReport:
    """Load study ``name`` and analyse it with all raters and without the flagged ones."""
    ratings = load_ratings(store, name)
    raters = load_raters(store, name, ratings)
    flagged = raters.loc[raters["flagged"], "rater"]
    return StudyReport(ratings, raters, analyse(ratings), analyse(ratings[~ratings["rater"].isin(flagged)]))


def export_study(store: Store, name: str, out_dir: str | Path, exclude_flagged: bool = False) -> list[Path]:
    """Write the :data:`CSV_FILES` of study ``name`` into ``out_dir`` (created if needed); return their paths.

    ``ratings.csv`` and ``raters.csv`` always hold every rater; the MOS, DMOS and Wilcoxon files are computed
    without the flagged raters when ``exclude_flagged`` is set.
    """
    report = study_report(store, name)
    analysis = report.screened if exclude_flagged else report.all_raters
    tables = dict(
        zip(
            CSV_FILES,
            (report.ratings, analysis.by_method, analysis.by_image, analysis.dmos, analysis.wilcoxon, report.raters),
            strict=True,
        )
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for file_name, table in tables.items():
        table.to_csv(out / file_name, index=False, date_format="%Y-%m-%dT%H:%M:%S.%fZ")
    return [out / file_name for file_name in tables]
