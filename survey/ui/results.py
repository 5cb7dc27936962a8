"""The Results tab (admin only): MOS per method with 95 % intervals and a bar chart, MOS per image, DMOS,
paired Wilcoxon tests and rater screening, with or without flagged raters, and CSV downloads.

Every handler takes the admin password as its first argument and checks it itself, so calling an endpoint
through the Gradio API without it fails. Nothing about any study is on the page before the password is given
(the study list is filled in only then), so raters using the same app learn nothing from this tab.
"""

from __future__ import annotations

import hmac
import html
import math
import os
import tempfile
from dataclasses import dataclass
from functools import partial

import gradio as gr
import pandas as pd

from survey.db import ACR_LABELS, MAX_SCORE, MIN_SCORE, Store, stored_secret
from survey.export import export_study, study_report
from survey.studies import SurveyError, list_studies, summarize

ADMIN_PASSWORD_ENV = "SR_LAB_ADMIN_PASSWORD"
#: File in the data directory keeping a generated admin password (readable by its owner only).
ADMIN_PASSWORD_FILE = "admin-password"
WRONG_PASSWORD = "Wrong admin password."
#: Decimal places shown in the tables (the CSV files keep full precision).
DECIMALS = 3
ALL, SCREENED = "all", "without flagged"
#: SVG chart size and margins in pixels; the left margin holds the ACR labels.
CHART_WIDTH, CHART_HEIGHT, CHART_MARGIN, CHART_LEFT = 640, 320, 56, 88
BAR_COLOUR, INTERVAL_COLOUR = "#4f7cac", "#222"


def admin_password(store: Store) -> str:
    """``$SR_LAB_ADMIN_PASSWORD`` if set, else the one kept in the data directory, generated and printed once."""
    if password := os.environ.get(ADMIN_PASSWORD_ENV, "").strip():
        return password
    path = store.data_dir / ADMIN_PASSWORD_FILE
    password, created = stored_secret(path)
    if created:
        print(f"Survey admin password (generated; kept in {path}; set {ADMIN_PASSWORD_ENV} to choose one): {password}")
    return password


def require_admin(expected: str, password: str | None) -> None:
    """Raise ``gr.Error`` unless ``password`` is the admin password (compared in constant time)."""
    if not password or not hmac.compare_digest(password.encode(), expected.encode()):
        raise gr.Error(WRONG_PASSWORD)


def mos_chart(by_method: pd.DataFrame, title: str) -> str:
    """An SVG bar chart of MOS per method (rows of :func:`survey.stats.mos`) with 95 % interval error bars."""
    table = by_method.sort_values("mos").reset_index(drop=True)
    plot_w, plot_h = CHART_WIDTH - CHART_LEFT - CHART_MARGIN, CHART_HEIGHT - 2 * CHART_MARGIN

    def y(score: float) -> float:
        clipped = min(max(score, MIN_SCORE), MAX_SCORE)
        return CHART_MARGIN + (MAX_SCORE - clipped) / (MAX_SCORE - MIN_SCORE) * plot_h

    parts = [f'<text x="{CHART_WIDTH / 2}" y="22" text-anchor="middle" font-weight="bold">{html.escape(title)}</text>']
    for score, label in ACR_LABELS.items():
        parts.append(
            f'<line x1="{CHART_LEFT}" x2="{CHART_WIDTH - CHART_MARGIN}" y1="{y(score)}" y2="{y(score)}" '
            f'stroke="#ddd"/><text x="{CHART_LEFT - 6}" y="{y(score) + 4}" text-anchor="end" font-size="11">'
            f"{score} {label}</text>"
        )
    slot = plot_w / max(len(table), 1)
    for i, row in table.iterrows():
        centre = CHART_LEFT + (i + 0.5) * slot
        half = slot * 0.3
        parts.append(
            f'<rect x="{centre - half}" y="{y(row["mos"])}" width="{2 * half}" '
            f'height="{y(MIN_SCORE) - y(row["mos"])}" fill="{BAR_COLOUR}"/>'
            f'<text x="{centre}" y="{CHART_HEIGHT - CHART_MARGIN + 18}" text-anchor="middle" font-size="12">'
            f"{html.escape(str(row['method']))}</text>"
        )
        if not math.isnan(row["ci95_low"]):
            low, high, cap = y(row["ci95_low"]), y(row["ci95_high"]), half / 3
            parts.append(
                f'<path d="M{centre},{low}V{high}M{centre - cap},{low}h{2 * cap}M{centre - cap},{high}h{2 * cap}" '
                f'stroke="{INTERVAL_COLOUR}" stroke-width="1.5" fill="none"/>'
            )
        parts.append(f'<text x="{centre + half + 4}" y="{y(row["mos"]) + 4}" font-size="11">{row["mos"]:.2f}</text>')
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{CHART_WIDTH}" height="{CHART_HEIGHT}" '
        f'font-family="sans-serif" role="img" aria-label="{html.escape(title)}">{"".join(parts)}</svg>'
    )


def rounded(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with its float columns rounded to :data:`DECIMALS` places for display, except p-values."""
    return table.round({c: DECIMALS for c in table.select_dtypes("float").columns if not c.startswith("p_")})


@dataclass(frozen=True)
class ResultsView:
    """The Results tab's content for one study."""

    summary: str
    chart: str
    by_method: pd.DataFrame
    dmos: pd.DataFrame
    wilcoxon: pd.DataFrame
    raters: pd.DataFrame
    by_image: pd.DataFrame


def results_studies(store: Store, expected: str, password: str) -> list[str]:
    """The names of every study, newest first (admin only)."""
    require_admin(expected, password)
    return [study.name for study in reversed(list_studies(store))]


def results_show(store: Store, expected: str, password: str, name: str, exclude_flagged: bool) -> ResultsView:
    """Every result of study ``name`` (admin only); the chart, DMOS, Wilcoxon and per-image tables leave out the
    flagged raters when ``exclude_flagged`` is set, the MOS table shows both."""
    require_admin(expected, password)
    try:
        summary = summarize(store, name or "")
        report = study_report(store, summary.name)
    except SurveyError as error:
        raise gr.Error(str(error)) from error
    chosen = report.screened if exclude_flagged else report.all_raters
    by_method = pd.concat(
        [report.all_raters.by_method.assign(raters=ALL), report.screened.by_method.assign(raters=SCREENED)]
    )
    flagged = ", ".join(map(str, report.flagged)) or "none"
    text = (
        f"**{summary.name}** ({summary.status}); rater link `/?study={summary.public_id}`; {summary.images} images × "
        f"{len(summary.conditions)} conditions ({', '.join(summary.conditions)}); {summary.raters} raters "
        f"({summary.finished_raters} finished); {summary.ratings} ratings. Flagged raters: {flagged}."
    )
    title = f"MOS per method, 95 % CI ({SCREENED if exclude_flagged else ALL} raters)"
    return ResultsView(
        summary=text, chart=mos_chart(chosen.by_method, title) if len(chosen.by_method) else "",
        by_method=rounded(by_method), dmos=rounded(chosen.dmos), wilcoxon=rounded(chosen.wilcoxon),
        raters=rounded(report.raters), by_image=rounded(chosen.by_image),
    )  # fmt: skip


def results_export(store: Store, expected: str, password: str, name: str, exclude_flagged: bool) -> list[str]:
    """Write study ``name``'s CSV files into a new temporary folder and return their paths (admin only)."""
    require_admin(expected, password)
    try:
        paths = export_study(store, name or "", tempfile.mkdtemp(prefix="sr-lab-export-"), exclude_flagged)
    except SurveyError as error:
        raise gr.Error(str(error)) from error
    return [str(path) for path in paths]


def build_results_tab(store: Store, password: str) -> None:
    """Lay out the Results tab inside the current ``gr.Blocks`` context; ``password`` is :func:`admin_password`."""
    gr.Markdown("Survey results, for the study's owner. Enter the admin password to see the studies.")
    with gr.Row():
        given = gr.Textbox(label="Admin password", type="password", scale=3)
        sign_in = gr.Button("Sign in", scale=1)
    with gr.Row():
        study = gr.Dropdown(label="Study", choices=[], interactive=True, allow_custom_value=True, scale=3)
        exclude = gr.Checkbox(label="Leave out flagged raters", scale=1)
        show = gr.Button("Show results", variant="primary", scale=1)
    summary = gr.Markdown()
    chart = gr.HTML()
    by_method = gr.Dataframe(label="MOS per method (all raters, and without flagged raters)", interactive=False)
    dmos = gr.Dataframe(label="DMOS (5 = as good as the original)", interactive=False)
    wilcoxon = gr.Dataframe(
        label="Paired two-sided Wilcoxon signed-rank tests (p_holm < 0.05: significant, all pairs considered)",
        interactive=False,
    )
    raters = gr.Dataframe(
        label="Raters and screening (BT.500 kurtosis rule, correlation with MOS < 0.75)", interactive=False
    )
    by_image = gr.Dataframe(label="MOS per image × method", interactive=False)
    with gr.Row():
        export = gr.Button("Export CSV files")
        files = gr.File(label="CSV files", file_count="multiple", interactive=False)

    def list_choices(password_given: str) -> gr.Dropdown:
        names = results_studies(store, password, password_given)
        return gr.Dropdown(choices=names, value=names[0] if names else None)

    def show_results(password_given: str, name: str, leave_out: bool) -> tuple[object, ...]:
        view = results_show(store, password, password_given, name, leave_out)
        return view.summary, view.chart, view.by_method, view.dmos, view.wilcoxon, view.raters, view.by_image

    outputs = [summary, chart, by_method, dmos, wilcoxon, raters, by_image]
    sign_in.click(list_choices, [given], [study], api_name="results_studies")
    given.submit(list_choices, [given], [study], api_visibility="private")
    show.click(show_results, [given, study, exclude], outputs, api_name="results_show")
    exclude.change(show_results, [given, study, exclude], outputs, api_visibility="private")
    export.click(partial(results_export, store, password), [given, study, exclude], [files], api_name="results_export")
