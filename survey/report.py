"""What a study's results look like, for the Results tab and for a self-contained HTML report.

:func:`sections` turns a :class:`~survey.export.StudyReport` (ACR) or :class:`~survey.export.PairReport` (PC) into
charts (SVG) and labelled tables; the Results tab shows them, and :func:`html_report` puts them into one HTML page
with the study design (images, conditions, raters, exclusions) and how the numbers were computed, nothing loaded
from elsewhere: a file to attach to a paper as supplementary material.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Generic, TypeVar

import pandas as pd

from survey.charts import heatmap, mos_chart, scores_chart, significance_matrix
from survey.db import GOLD_RANGES, PC, SIDE_BY_SIDE
from survey.pairwise import PairAnalysis
from survey.stats import Analysis
from survey.studies import StudySummary

AnalysisT = TypeVar("AnalysisT", Analysis, PairAnalysis)

#: Decimal places shown in tables (the CSV files keep full precision).
DECIMALS = 3
ALL, SCREENED = "all", "without flagged"
BY_METHOD = "MOS per method (all raters, and without flagged raters)"
DMOS = (
    "DMOS: score − the same rater's score of the original + 5 (5 = as good as the original, above 5 = scored "
    "better than the original, from 1 to 9)"
)
WILCOXON = "Paired two-sided Wilcoxon signed-rank tests (p_holm < 0.05: significant, all pairs considered)"
RATERS = "Raters and screening (BT.500 kurtosis rule, correlation with MOS < 0.75, gold items, too fast)"
BY_IMAGE = "MOS per image × method"
PC_SCORES = "Bradley–Terry scores per method (log strength, mean 0; 95 % CI from a bootstrap over raters)"
PC_WINS = "Wins per pair, two-sided sign tests (ties left out; p_holm < 0.05: significant, all pairs considered)"
PC_WIN_RATE = "Win rate: how often the row method was preferred to the column method (ties count half)"
PC_RATERS = (
    "Raters (agreement: share of their choices for the method all raters prefer, 0.5 is chance; flagged: too fast)"
)
#: How a rater is found too fast (:func:`survey.stats.speed_check`), for the methods texts.
TOO_FAST_TEXT = (
    "a rater whose median response time (from sending the image to receiving the answer) is below a threshold is "
    "flagged as too fast (flag_reason gives both)"
)
ACR_METHODS_TEXT = (
    "Scores from 1 (Bad) to 5 (Excellent) (ITU-T P.910 ACR). MOS with two 95 % intervals: Student t over all "
    "scores (treats them as independent: it says how precisely these raters rated these images), and a two-way "
    "cluster bootstrap that resamples raters and images (it says how far the MOS may move with other raters and "
    "other images; quote this one when generalising). Differences between methods: paired two-sided Wilcoxon "
    "signed-rank tests over (rater, image), Holm-adjusted over all pairs. Rater screening: ITU-R BT.500 kurtosis "
    f"rule and ITU-T P.913 correlation with the MOS (r < 0.75); gold items where the study has them; {TOO_FAST_TEXT}."
)
PC_METHODS_TEXT = (
    "Forced choice between two versions of one image (2AFC). Every rater compared every pair of conditions on every "
    "image once, in a random order, sides balanced across raters. Scores: Bradley–Terry log strengths (mean 0; a "
    "difference d means the higher one is preferred with probability 1 / (1 + e^−d)), fitted by maximum likelihood "
    "(choix, I-LSR), ties counting half a win for each side; 95 % intervals: score ± t(R − 1) × the standard "
    "deviation of the scores over a bootstrap of the R raters. Differences: exact two-sided binomial sign tests per "
    f"pair (ties left out), Holm-adjusted over all pairs. Rater screening: {TOO_FAST_TEXT}."
)


@dataclass(frozen=True)
class Report(Generic[AnalysisT]):
    """Everything shown of a study: its design (``images``: the names of its images), the raters table (with
    ``flagged``), and the analysis of every rater's answers and of the answers of the raters not flagged."""

    summary: StudySummary
    images: list[str]
    raters: pd.DataFrame
    all_raters: AnalysisT
    screened: AnalysisT

    @property
    def flagged(self) -> list[int]:
        """The raters flagged by any rule."""
        return self.raters.loc[self.raters["flagged"], "rater"].tolist()

    def analysis(self, exclude_flagged: bool) -> AnalysisT:
        """The analysis without the flagged raters when ``exclude_flagged``, else of all raters."""
        return self.screened if exclude_flagged else self.all_raters


@dataclass(frozen=True)
class StudyReport(Report[Analysis]):
    """An ACR study's report, with its ratings."""

    ratings: pd.DataFrame


@dataclass(frozen=True)
class PairReport(Report[PairAnalysis]):
    """A pair comparison study's report, with its choices."""

    choices: pd.DataFrame


@dataclass(frozen=True)
class Sections:
    """A study's results for display: the main chart, further charts (SVG) and tables (label → table)."""

    chart: str
    figures: list[str]
    tables: dict[str, pd.DataFrame]


def counted(n: int, noun: str) -> str:
    """``n`` and ``noun``, plural unless ``n`` is 1: "1 rater", "2 raters"."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def rounded(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` for display: float columns rounded to :data:`DECIMALS` places, except p-values, and times as text
    (UTC, to the second; a web client's JSON has no type for them)."""
    shown = table.round({c: DECIMALS for c in table.select_dtypes("float").columns if not c.startswith("p_")})
    for column in shown.select_dtypes("datetime").columns:
        shown[column] = shown[column].dt.strftime("%Y-%m-%d %H:%M:%S")
    return shown


def sections(report: StudyReport | PairReport, exclude_flagged: bool) -> Sections:
    """Charts and tables of ``report``, of the analysis without flagged raters when ``exclude_flagged`` (for ACR, the
    MOS table shows both)."""
    raters = SCREENED if exclude_flagged else ALL
    if isinstance(report, PairReport):
        return pair_sections(report.analysis(exclude_flagged), report.raters, raters)
    chosen = report.analysis(exclude_flagged)
    by_method = pd.concat(
        [report.all_raters.by_method.assign(raters=ALL), report.screened.by_method.assign(raters=SCREENED)]
    )
    tables = {
        BY_METHOD: by_method, DMOS: chosen.dmos, WILCOXON: chosen.wilcoxon, RATERS: report.raters,
        BY_IMAGE: chosen.by_image,
    }  # fmt: skip
    if chosen.by_method.empty:
        return Sections("", [], {label: rounded(table) for label, table in tables.items()})
    best_first = chosen.by_method.sort_values("mos", ascending=False)["method"].tolist()
    pairs = chosen.wilcoxon.rename(columns={"mean_diff": "diff"})
    figures = [
        significance_matrix(pairs, best_first, f"Which method is better (Wilcoxon, Holm; {raters} raters)"),
        heatmap(chosen.by_image, f"MOS per image × method ({raters} raters)"),
    ]
    chart = mos_chart(chosen.by_method, f"MOS per method, 95 % CI ({raters} raters)")
    return Sections(chart, figures, {label: rounded(table) for label, table in tables.items()})


def pair_sections(analysis: PairAnalysis, raters_table: pd.DataFrame, raters: str) -> Sections:
    """Charts and tables of a pair comparison study: the ``analysis`` of the answers of ``raters`` (:data:`ALL` or
    :data:`SCREENED`) and the raters table."""
    win_rate = analysis.win_rate.reset_index()
    tables = {PC_SCORES: analysis.scores, PC_WINS: analysis.wins, PC_WIN_RATE: win_rate, PC_RATERS: raters_table}
    if analysis.scores.empty:
        return Sections("", [], {label: rounded(table) for label, table in tables.items()})
    best_first = analysis.scores.sort_values("score", ascending=False)["method"].tolist()
    pairs = analysis.wins.assign(diff=analysis.wins["wins_a"] - analysis.wins["wins_b"])
    figures = [significance_matrix(pairs, best_first, f"Which method is preferred (sign tests, Holm; {raters} raters)")]
    chart = scores_chart(analysis.scores, f"Bradley–Terry score per method, 95 % CI ({raters} raters)")
    return Sections(chart, figures, {label: rounded(table) for label, table in tables.items()})


def design(summary: StudySummary, images: list[str], flagged: list[int], exclude_flagged: bool) -> list[str]:
    """The study design as short plain-text lines: protocol, images, conditions, raters and exclusions."""
    if summary.protocol == PC:
        shown = "side by side" if summary.presentation == SIDE_BY_SIDE else "flipped in place at the same position"
        ties = "allowed" if summary.allow_tie else "not allowed"
        protocol, answers = f"pair comparison (2AFC), versions {shown}, ties ('no difference') {ties}", "choices"
    else:
        protocol, answers = "absolute category rating (ACR, 1–5)", "ratings"
    excluded = "none"
    if flagged:
        excluded = f"{counted(len(flagged), 'rater')} ({', '.join(map(str, flagged))}) flagged; " + (
            "left out of the analysis" if exclude_flagged else "kept in the analysis"
        )
    lines = [
        f"Protocol: {protocol}",
        f"Images ({len(images)}): {', '.join(images)}",
        f"Conditions ({len(summary.conditions)}): {', '.join(summary.conditions)}",
        f"Raters: {summary.raters} ({summary.finished_raters} finished); {summary.ratings} {answers}",
        f"Exclusions: {excluded}",
    ]
    if summary.gold:
        ranges = ", ".join(f"{condition} {low}–{high}" for condition, (low, high) in GOLD_RANGES.items())
        lines.append(
            f"Gold items: versions of an image outside the study, mixed into every rater's order and left out of the "
            f"analysis, to be scored {ranges}; a rater who scores one outside its range is flagged"
        )
    return lines


def html_table(table: pd.DataFrame) -> str:
    """A table as HTML, missing values (NaN, None) shown empty."""
    return table.astype(object).where(table.notna(), "").to_html(index=False, border=0, classes="numbers")


def html_report(report: StudyReport | PairReport, exclude_flagged: bool) -> str:
    """One self-contained HTML page of ``report``: study design, method, charts (inline SVG) and tables."""
    summary = report.summary
    shown = sections(report, exclude_flagged)
    lines = design(summary, report.images, report.flagged, exclude_flagged)
    method = PC_METHODS_TEXT if isinstance(report, PairReport) else ACR_METHODS_TEXT
    parts = [
        f"<h1>{html.escape(summary.name)}</h1>",
        f"<p>Study created {summary.created_at:%Y-%m-%d %H:%M} UTC; status {summary.status}.</p>",
        "<h2>Design</h2><ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in lines) + "</ul>",
        f"<h2>Method</h2><p>{html.escape(method)}</p>",
        "<h2>Results</h2>",
        f'<div class="charts">{shown.chart}{"".join(shown.figures)}</div>' if shown.chart else "<p>No answers yet.</p>",
        *(f"<h3>{html.escape(label)}</h3>{html_table(table)}" for label, table in shown.tables.items()),
    ]
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(summary.name)}: survey results</title><style>"
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
        ".charts{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}"
        "table.numbers{border-collapse:collapse;font-size:13px;margin-bottom:1em}"
        "table.numbers td,table.numbers th{border-bottom:1px solid #ddd;padding:2px 8px;text-align:right}"
        "</style></head><body>" + "".join(parts) + "</body></html>"
    )
