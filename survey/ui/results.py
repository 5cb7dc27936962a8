"""The Results tab (admin only): for an ACR study, MOS per method with both 95 % intervals, which method is better
(a significance matrix), MOS per image × method (a heatmap), DMOS, paired Wilcoxon tests, agreement between raters and
who is accepted or rejected (:mod:`survey.screening`), of the accepted raters (by default) or of all; for a pair
comparison study, Bradley–Terry scores, the significance matrix, wins with sign tests, win rates, agreement and
raters. Charts and tables come from :mod:`survey.report`; the export button gives the CSV files
and the self-contained HTML report.

Every handler takes the admin password as its first argument and checks it itself, so calling an endpoint
through the Gradio API without it fails. The tab's events check it through :class:`AdminLogin` first, which refuses
every password, the right one too, to a client (and to everyone) after a few wrong ones, until the window passes.
Nothing about any study is on the page before the password is given (the study list is filled in only then), so
raters using the same app learn nothing from this tab.
"""

from __future__ import annotations

import hmac
import math
import os
import tempfile
import time
from dataclasses import dataclass

import gradio as gr
import pandas as pd
from gradio.processing_utils import save_file_to_cache
from gradio.utils import get_upload_folder
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from sr_app.errors import user_error
from survey.db import PC, Store
from survey.errors import SurveyError
from survey.export import every_rater_rejected, export_study, study_report
from survey.private_files import stored_secret
from survey.report import counted, sections
from survey.studies import list_studies, rater_path, summarize

ADMIN_PASSWORD_ENV = "SR_LAB_ADMIN_PASSWORD"
#: File in the data directory keeping a generated admin password (readable by its owner only).
ADMIN_PASSWORD_FILE = "admin-password"
WRONG_PASSWORD = "Wrong admin password."
#: Wrong admin passwords allowed from one client address, and from all clients together, in a moving window.
CLIENT_LIMIT, GLOBAL_LIMIT = parse("5/minute"), parse("20/minute")
TOO_MANY_WRONG = "Too many wrong passwords; try again in {seconds} s."
#: The checkbox that shows the analysis of the accepted raters only (ticked at first).
LEAVE_OUT = "Leave out rejected raters"
#: The client key of a call that did not come through the web (a handler called from Python).
LOCAL_CLIENT = "local"
#: How many tables the tab can show (an ACR study has 6, a pair comparison 5).
TABLE_SLOTS = 6


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
    """Raise ``gr.Error`` unless ``password`` is the admin password (compared in constant time); a wrong one is the
    user's error, not logged as a failure."""
    if not password or not hmac.compare_digest(password.encode(), expected.encode()):
        raise user_error(WRONG_PASSWORD)


class AdminLogin:
    """The admin password with a limit on wrong guesses: after ``client_limit`` wrong passwords from one client address
    or ``global_limit`` from all clients together within their window (``limits``' moving window, kept in memory),
    every password, the right one too, is refused to that client (or to everyone) until the oldest wrong one leaves
    the window. Only wrong passwords count; a refused attempt does not."""

    def __init__(
        self, password: str, client_limit: RateLimitItem = CLIENT_LIMIT, global_limit: RateLimitItem = GLOBAL_LIMIT
    ) -> None:
        self.password = password
        self.client_limit, self.global_limit = client_limit, global_limit
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    def require(self, password: str | None, request: gr.Request | None) -> None:
        """Raise ``gr.Error`` when ``request``'s client (its host address; :data:`LOCAL_CLIENT` without a request) or
        everyone has had too many wrong passwords ("Too many wrong passwords; try again in N s"), else unless
        ``password`` is the admin password (:func:`require_admin`), counting it when wrong."""
        client = request.client.host if request is not None and request.client is not None else LOCAL_CLIENT
        counters = [(self.client_limit, "client", client), (self.global_limit, "all")]
        resets = [
            self.limiter.get_window_stats(limit, *key).reset_time
            for limit, *key in counters
            if not self.limiter.test(limit, *key)
        ]
        if resets:
            raise user_error(TOO_MANY_WRONG.format(seconds=max(math.ceil(max(resets) - time.time()), 1)))
        try:
            require_admin(self.password, password)
        except gr.Error:
            for limit, *key in counters:
                self.limiter.hit(limit, *key)
            raise


@dataclass(frozen=True)
class ResultsView:
    """The Results tab's content for one study: a Markdown summary, the main chart and further charts (SVG), and
    the tables by label, rounded for display."""

    summary: str
    chart: str
    figures: str
    tables: dict[str, pd.DataFrame]


def results_studies(store: Store, expected: str, password: str) -> list[str]:
    """The names of every study, newest first (admin only)."""
    require_admin(expected, password)
    return [study.name for study in reversed(list_studies(store))]


def results_show(store: Store, expected: str, password: str, name: str, exclude_flagged: bool) -> ResultsView:
    """Every result of study ``name`` (admin only); the charts and tables are of the accepted raters when
    ``exclude_flagged`` is set, else of all raters, the MOS (or Bradley–Terry) and agreement tables show both."""
    require_admin(expected, password)
    try:
        summary = summarize(store, name or "")
        report = study_report(store, summary.name)
    except SurveyError as error:
        raise user_error(str(error)) from error
    shown = sections(report, exclude_flagged)
    rejected = ", ".join(map(str, report.rejected)) or "none"
    kind, answer = ("Pair comparison", "choice") if summary.protocol == PC else ("ACR", "rating")
    text = (
        f"**{summary.name}** ({summary.status}); {kind}; rater link `{rater_path(summary.public_id)}`; "
        f"{counted(summary.images, 'image')} × {counted(len(summary.conditions), 'condition')} "
        f"({', '.join(summary.conditions)}); {counted(summary.raters, 'rater')} ({summary.finished_raters} finished); "
        f"{counted(summary.ratings, answer)}. Rejected raters: {rejected}."
    )
    if exclude_flagged and every_rater_rejected(report):
        text += (
            "\n\n**Every rater who gave a score is flagged** (rejected), so nothing is left to show without them (see "
            f"why in the raters table, column reasons). Untick *{LEAVE_OUT}* to see everyone's results."
        )
    figures = (
        f'<div style="display:flex;flex-wrap:wrap;gap:1em">{"".join(shown.figures)}</div>' if shown.figures else ""
    )
    return ResultsView(summary=text, chart=shown.chart, figures=figures, tables=shown.tables)


def results_export(store: Store, expected: str, password: str, name: str, exclude_flagged: bool) -> list[str]:
    """Study ``name``'s CSV files and HTML report (admin only): written into a temporary folder, copied into Gradio's
    cache (``$GRADIO_TEMP_DIR``, where downloads are served from and which the app clears of files older than an
    hour), the folder removed; return the copies' paths."""
    require_admin(expected, password)
    with tempfile.TemporaryDirectory(prefix="sr-lab-export-") as folder:
        try:
            paths = export_study(store, name or "", folder, exclude_flagged)
        except SurveyError as error:
            raise user_error(str(error)) from error
        return [save_file_to_cache(path, get_upload_folder()) for path in paths]


def build_results_tab(store: Store, password: str) -> None:
    """Lay out the Results tab inside the current ``gr.Blocks`` context; ``password`` is :func:`admin_password`, its
    wrong guesses limited by an :class:`AdminLogin` of the tab."""
    login = AdminLogin(password)
    gr.Markdown("Survey results, for the study's owner. Enter the admin password to see the studies.")
    with gr.Row():
        given = gr.Textbox(label="Admin password", type="password", scale=3)
        sign_in = gr.Button("Sign in", scale=1)
    with gr.Row():
        study = gr.Dropdown(label="Study", choices=[], interactive=True, allow_custom_value=True, scale=3)
        exclude = gr.Checkbox(label=LEAVE_OUT, value=True, scale=1)
        show = gr.Button("Show results", variant="primary", scale=1)
    summary = gr.Markdown()
    chart = gr.HTML()
    figures = gr.HTML()
    tables = [gr.Dataframe(interactive=False, visible=False) for _ in range(TABLE_SLOTS)]
    with gr.Row():
        export = gr.Button("Export CSV files and HTML report")
        files = gr.File(label="CSV files and report", file_count="multiple", interactive=False)

    def list_choices(password_given: str, request: gr.Request | None = None) -> gr.Dropdown:
        login.require(password_given, request)
        names = results_studies(store, password, password_given)
        return gr.Dropdown(choices=names, value=names[0] if names else None)

    def show_results(
        password_given: str, name: str, leave_out: bool, request: gr.Request | None = None
    ) -> tuple[object, ...]:
        login.require(password_given, request)
        view = results_show(store, password, password_given, name, leave_out)
        shown = [gr.Dataframe(table, label=label, visible=True) for label, table in view.tables.items()]
        hidden = [gr.Dataframe(visible=False)] * (TABLE_SLOTS - len(shown))
        return view.summary, view.chart, view.figures, *shown, *hidden

    def export_files(password_given: str, name: str, leave_out: bool, request: gr.Request | None = None) -> list[str]:
        login.require(password_given, request)
        return results_export(store, password, password_given, name, leave_out)

    outputs = [summary, chart, figures, *tables]
    sign_in.click(list_choices, [given], [study], api_name="results_studies")
    given.submit(list_choices, [given], [study], api_visibility="private")
    show.click(show_results, [given, study, exclude], outputs, api_name="results_show")
    exclude.change(show_results, [given, study, exclude], outputs, api_visibility="private")
    export.click(export_files, [given, study, exclude], [files], api_name="results_export")
