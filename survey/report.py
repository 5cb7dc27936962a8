"""What a study's results look like, for the Results tab and for a self-contained HTML report.

:func:`sections` turns a :class:`~survey.export.StudyReport` (ACR) or :class:`~survey.export.PairReport` (PC) into
charts (SVG) and labelled tables; the Results tab shows them, and :func:`html_report` puts them into one HTML page
with the study design (images, conditions, raters, exclusions) and how the numbers were computed, nothing loaded
from elsewhere: a file to attach to a paper as supplementary material. The analysis is of the accepted raters
(:mod:`survey.screening`) or of all, as asked, with all raters' and the accepted raters' MOS or Bradley–Terry scores and
agreement between raters (:mod:`survey.agreement`) side by side.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Generic, TypeVar

import pandas as pd

from sr_app.methods import REGISTRY
from survey.agreement import agreement, consistence, krippendorff_alpha
from survey.charts import heatmap, mos_chart, scores_chart, significance_matrix
from survey.db import GOLD_RANGES, NEAREST, PC, REFERENCE, SIDE_BY_SIDE
from survey.pairwise import PairAnalysis
from survey.screening import MAX_CIRCULAR_SHARE, MIN_PC_AGREEMENT, MIN_STRAIGHT_LINE_SCORES, REJECTED
from survey.stats import MIN_MOS_CORRELATION, Analysis
from survey.studies import StudySummary

AnalysisT = TypeVar("AnalysisT", Analysis, PairAnalysis)

#: Decimal places shown in tables, and significant digits of p-values (the CSV files keep full precision).
DECIMALS = 3
#: Titles of the conditions that are not methods of the registry, in tables and charts (the CSV files keep names).
CONDITION_TITLES = {REFERENCE: "Original (reference)", NEAREST: "Nearest ×4 (anchor)"}
#: Columns of the analysis tables that name a condition.
METHOD_COLUMNS = ("method", "method_a", "method_b")
ALL, SCREENED = "all", "accepted"
BY_METHOD = "MOS per method (all raters, and accepted raters)"
DMOS = (
    "DMOS: score − the same rater's score of the original + 5 (5 = as good as the original, above 5 = scored "
    "better than the original, from 1 to 9)"
)
WILCOXON = "Paired two-sided Wilcoxon signed-rank tests (p_holm < 0.05: significant, all pairs considered)"
#: The rules that reject a rater in both protocols (:mod:`survey.screening`), for the labels and methods texts.
COMMON_RULES = "a failed trapping item, too fast, incomplete (or training not completed)"
RATERS = (
    f"Raters: accepted or rejected, and why (correlation with the MOS < {MIN_MOS_CORRELATION}, gold items, "
    f"{COMMON_RULES}, straight-lining; BT.500 reported only)"
)
AGREEMENT = (
    "Agreement between raters (all raters, and accepted raters): Krippendorff's alpha, ordinal (1 = every rater gave "
    "every image the same score, 0 = chance; ≥ 0.8 reliable, ≥ 0.667 enough for tentative conclusions)"
)
PC_AGREEMENT = (
    "Agreement between raters (all raters, and accepted raters): Kendall's coefficient of agreement u (1 = every "
    "rater made the same choices, 0 = pairs of raters agree as often as they disagree) and the raters' mean "
    "coefficient of consistence ζ (1 = no circular triads A > B > C > A, 0 = as many as possible)"
)
BY_IMAGE = "MOS per image × method"
PC_SCORES = (
    "Bradley–Terry scores per method, all raters and accepted raters (log strength, mean 0; 95 % CI from a bootstrap "
    "over raters and images)"
)
PC_WINS = "Wins per pair, two-sided sign tests (ties left out; p_holm < 0.05: significant, all pairs considered)"
PC_WIN_RATE = "Win rate: how often the row method was preferred to the column method (ties count half)"
PC_RATERS = (
    "Raters: accepted or rejected, and why (agreement: share of their choices for the method all raters prefer, "
    f"0.5 is chance, < {MIN_PC_AGREEMENT} rejects; circular triads, > {MAX_CIRCULAR_SHARE:.0%} rejects; "
    f"{COMMON_RULES})"
)
#: The rules of both protocols in the methods texts (:mod:`survey.screening`).
COMMON_RULES_TEXT = (
    "a failed trapping item, a median response time (from sending the image to receiving the answer) below a "
    "threshold, or fewer answers than items given (or training items); the raters table gives every reason, and the "
    "rejected raters are left out of the analysis unless the design says they are kept"
)
ACR_METHODS_TEXT = (
    "Scores from 1 (Bad) to 5 (Excellent) (ITU-T P.910 ACR). MOS with two 95 % intervals: Student t over all "
    "scores (treats them as independent: it says how precisely these raters rated these images), and a two-way "
    "cluster bootstrap that resamples raters and images (it says how far the MOS may move with other raters and "
    "other images; quote this one when generalising). Differences between methods: paired two-sided Wilcoxon "
    "signed-rank tests over (rater, image), Holm-adjusted over all pairs. Rater screening (ITU-T P.808 style): a "
    f"rater is rejected for a correlation of their scores with the MOS below {MIN_MOS_CORRELATION} (ITU-T P.913), a "
    f"gold item scored outside its range, {MIN_STRAIGHT_LINE_SCORES} or more scores all the same, "
    f"{COMMON_RULES_TEXT} (the ITU-R BT.500 kurtosis rule is reported, not applied). Agreement between raters: "
    "Krippendorff's alpha, ordinal."
)
PC_METHODS_TEXT = (
    "Forced choice between two versions of one image (2AFC). Every rater compared every pair of conditions on every "
    "image once, in a random order, sides balanced across raters. Scores: Bradley–Terry log strengths (mean 0; a "
    "difference d means the higher one is preferred with probability 1 / (1 + e^−d)), fitted by maximum likelihood "
    "(choix, I-LSR), ties counting half a win for each side; 95 % intervals: score ± t(R − 1) × the standard "
    "deviation of the scores over a bootstrap of the R raters. Differences: exact two-sided binomial sign tests per "
    f"pair (ties left out), Holm-adjusted over all pairs. Rater screening (ITU-T P.808 style): a rater is rejected for "
    f"agreeing with the methods' order over all raters in under {MIN_PC_AGREEMENT:.0%} of their choices, more than "
    f"{MAX_CIRCULAR_SHARE:.0%} of their triads of methods on one image circular, preferring the damaged version of "
    f"a trapping pair, {COMMON_RULES_TEXT}. Agreement between raters: Kendall and Babington Smith's coefficients of "
    "agreement and consistence (1940)."
)


@dataclass(frozen=True)
class Report(Generic[AnalysisT]):
    """Everything shown of a study: its design (``images``: the names of its images), the raters table (with
    ``status``, :mod:`survey.screening`), and the analysis of every rater's answers and of the accepted raters'."""

    summary: StudySummary
    images: list[str]
    raters: pd.DataFrame
    all_raters: AnalysisT
    screened: AnalysisT

    @property
    def rejected(self) -> list[int]:
        """The raters rejected by any rule."""
        return self.raters.loc[self.raters["status"] == REJECTED, "rater"].tolist()

    def analysis(self, exclude_flagged: bool) -> AnalysisT:
        """The analysis of the accepted raters when ``exclude_flagged``, else of all raters."""
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


def method_title(name: str) -> str:
    """How tables and charts name condition ``name``: a registry method's title ("EDSR-SRGAN"), the reference's and
    the anchor's (:data:`CONDITION_TITLES`); a folder of outputs or a user's model keeps its name."""
    return CONDITION_TITLES.get(name) or (REGISTRY[name].title if name in REGISTRY else name)


def titled(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with conditions named by :func:`method_title`, in its :data:`METHOD_COLUMNS` and as column labels
    (a method × method matrix)."""
    shown = table.assign(**{c: table[c].map(method_title) for c in METHOD_COLUMNS if c in table.columns})
    return shown.rename(columns=lambda column: method_title(column) if isinstance(column, str) else column)


def significant(p: float) -> float:
    """``p`` to :data:`DECIMALS` significant digits (1.07e-15 stays 1.07e-15, not 0.0); NaN as it is."""
    return float(f"{p:.{DECIMALS}g}")


def rounded(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` for display: conditions by their titles (:func:`titled`), float columns rounded to :data:`DECIMALS`
    places, p-values to as many significant digits, and times as text (UTC, to the second; a web client's JSON has
    no type for them)."""
    floats = table.select_dtypes("float").columns
    shown = titled(table.round({c: DECIMALS for c in floats if not c.startswith("p_")}))
    for column in (c for c in floats if c.startswith("p_")):
        shown[column] = shown[column].map(significant)
    for column in shown.select_dtypes("datetime").columns:
        shown[column] = shown[column].dt.strftime("%Y-%m-%d %H:%M:%S")
    return shown


def sections(report: StudyReport | PairReport, exclude_flagged: bool) -> Sections:
    """Charts and tables of ``report``, of the analysis of the accepted raters when ``exclude_flagged`` (the MOS or
    Bradley–Terry table and the agreement table show both)."""
    if isinstance(report, PairReport):
        return pair_sections(report, exclude_flagged)
    raters = SCREENED if exclude_flagged else ALL
    chosen = report.analysis(exclude_flagged)
    by_method = pd.concat(
        [report.all_raters.by_method.assign(raters=ALL), report.screened.by_method.assign(raters=SCREENED)]
    )
    tables = {
        BY_METHOD: by_method, DMOS: chosen.dmos, WILCOXON: chosen.wilcoxon, AGREEMENT: agreement_table(report),
        RATERS: report.raters, BY_IMAGE: chosen.by_image,
    }  # fmt: skip
    if chosen.by_method.empty:
        return Sections("", [], {label: rounded(table) for label, table in tables.items()})
    best_first = titled(chosen.by_method).sort_values("mos", ascending=False)["method"].tolist()
    pairs = titled(chosen.wilcoxon.rename(columns={"mean_diff": "diff"}))
    figures = [
        significance_matrix(pairs, best_first, f"Which method is better (Wilcoxon, Holm; {raters} raters)"),
        heatmap(titled(chosen.by_image), f"MOS per image × method ({raters} raters)"),
    ]
    chart = mos_chart(titled(chosen.by_method), f"MOS per method, 95 % CI ({raters} raters)")
    return Sections(chart, figures, {label: rounded(table) for label, table in tables.items()})


def pair_sections(report: PairReport, exclude_flagged: bool) -> Sections:
    """Charts and tables of a pair comparison study's ``report``, of the analysis of the accepted raters when
    ``exclude_flagged`` (the scores and agreement tables show both)."""
    raters = SCREENED if exclude_flagged else ALL
    chosen = report.analysis(exclude_flagged)
    scores = pd.concat([report.all_raters.scores.assign(raters=ALL), report.screened.scores.assign(raters=SCREENED)])
    tables = {
        PC_SCORES: scores, PC_WINS: chosen.wins, PC_WIN_RATE: chosen.win_rate.reset_index(),
        PC_AGREEMENT: agreement_table(report), PC_RATERS: report.raters,
    }  # fmt: skip
    if chosen.scores.empty:
        return Sections("", [], {label: rounded(table) for label, table in tables.items()})
    best_first = titled(chosen.scores).sort_values("score", ascending=False)["method"].tolist()
    pairs = titled(chosen.wins.assign(diff=chosen.wins["wins_a"] - chosen.wins["wins_b"]))
    figures = [significance_matrix(pairs, best_first, f"Which method is preferred (sign tests, Holm; {raters} raters)")]
    chart = scores_chart(titled(chosen.scores), f"Bradley–Terry score per method, 95 % CI ({raters} raters)")
    return Sections(chart, figures, {label: rounded(table) for label, table in tables.items()})


def agreement_figures(answers: pd.DataFrame, pair: bool) -> dict[str, float]:
    """How far the raters of ``answers`` agree: ``n_raters`` and Krippendorff's alpha (ACR ratings), or Kendall's
    coefficient of agreement u and the raters' mean coefficient of consistence ζ (pair comparison choices), from
    :mod:`survey.agreement`; NaN where there is too little to tell."""
    n_raters = answers["rater"].nunique()
    if not pair:
        return {"n_raters": n_raters, "krippendorff_alpha": krippendorff_alpha(answers) if n_raters else float("nan")}
    return {
        "n_raters": n_raters, "kendall_u": agreement(answers),
        "mean_consistence": consistence(answers)["consistence"].mean(),
    }  # fmt: skip


def agreement_table(report: StudyReport | PairReport) -> pd.DataFrame:
    """:func:`agreement_figures` of ``report``'s answers: one row for all raters (:data:`ALL`), one for the accepted
    ones (:data:`SCREENED`), named in the column ``raters``."""
    pair = isinstance(report, PairReport)
    answers = report.choices if pair else report.ratings
    accepted = answers[~answers["rater"].isin(report.rejected)]
    rows = [(ALL, answers), (SCREENED, accepted)]
    return pd.DataFrame([{"raters": raters, **agreement_figures(shown, pair)} for raters, shown in rows])


def design(summary: StudySummary, images: list[str], rejected: list[int], exclude_flagged: bool) -> list[str]:
    """The study design as short plain-text lines: protocol, images, conditions, raters and exclusions."""
    if summary.protocol == PC:
        shown = "side by side" if summary.presentation == SIDE_BY_SIDE else "flipped in place at the same position"
        ties = "allowed" if summary.allow_tie else "not allowed"
        protocol, answers = f"pair comparison (2AFC), versions {shown}, ties ('no difference') {ties}", "choices"
    else:
        protocol, answers = "absolute category rating (ACR, 1–5)", "ratings"
    excluded = "none"
    if rejected:
        excluded = f"{counted(len(rejected), 'rater')} ({', '.join(map(str, rejected))}) rejected; " + (
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
            f"analysis, to be scored {ranges}; a rater who scores one outside its range is rejected"
        )
    return lines


def html_table(table: pd.DataFrame) -> str:
    """A table as HTML, numbers as Python writes them (the shortest text that reads back the same: 3.142, 1.07e-15),
    missing values (NaN, None) shown empty."""
    cells = table.astype(object).map(
        lambda value: "" if pd.isna(value) else repr(value) if isinstance(value, float) else value
    )
    return cells.to_html(index=False, border=0, classes="numbers")


def html_report(report: StudyReport | PairReport, exclude_flagged: bool) -> str:
    """One self-contained HTML page of ``report``: study design, method, charts (inline SVG) and tables."""
    summary = report.summary
    shown = sections(report, exclude_flagged)
    lines = design(summary, report.images, report.rejected, exclude_flagged)
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
