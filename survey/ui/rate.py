"""The Survey tab: what a rater sees, from the link ``/?study=<opaque id>`` to the thank-you page.

Pages: *welcome* (instructions; for ACR the scale and calibration with the original as an example of the top of
the scale and nearest-neighbour as one of the bottom; an optional self-report, Start), *rate* (ACR: one stimulus at
a time at full resolution, buttons 1–5, also keys 1–5, and a progress bar), *choose* (pair comparison: versions A and
B of one image at full resolution, by default at the same position, flipped with the space key, a tap on the photo or
the Flip button, or side by side; keys ←/→ or buttons to choose, ↓ or a button for "no difference" where allowed),
*done*, *closed* and *invalid*.

The rater's token is kept in the browser's local storage, so a reload resumes at the same stimulus. The
handlers :func:`survey_open`, :func:`survey_start`, :func:`survey_rate` and :func:`survey_choose` are plain functions
returning a :class:`SurveyPage`; they are also the API (``/survey_open``, ``/survey_start``, ``/survey_rate``,
``/survey_choose``). Blinding:
nothing they return names a method: a stimulus is its stored metadata-free PNG, named by an opaque token and
served as it is (a static path, so Gradio neither re-encodes it nor rewrites a cached copy that another rater is
downloading), and all versions of one image have the same size; which condition is version A is balanced across
raters.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal

import gradio as gr

from survey.db import ACR, ACR_LABELS, FLIP, LEFT, PC, RIGHT, TIE, Store
from survey.studies import (
    Progress,
    StorageError,
    SurveyError,
    pair_files,
    start_rater,
    stimulus_file,
    study_intro,
    submit_choice,
    submit_rating,
)
from survey.studies import progress as rater_progress

STUDY_PARAM = "study"
#: ``id`` to give the Survey tab, so that :func:`select_survey_tab` can open it for people following a rater link.
SURVEY_TAB_ID = "survey"
#: Browser scripts keeping the rater's token in the browser's local storage, under a key per study. (Plain
#: ``localStorage`` rather than ``gr.BrowserState``: the Survey tab may not be mounted yet when the page loads.)
STORAGE_PREFIX = "sr-lab-survey:"
RECALL_TOKEN_JS = f"(study, token) => [study, localStorage.getItem('{STORAGE_PREFIX}' + study) || '']"
REMEMBER_TOKEN_JS = (
    f"(study, token) => {{ if (study && token) localStorage.setItem('{STORAGE_PREFIX}' + study, token); }}"
)
CONCURRENCY_ID, CONCURRENCY_LIMIT = "survey", 16
SCALE_TEXT = "\n".join(f"- **{score}** {label}" for score, label in ACR_LABELS.items())
INVALID_LINK = "This page needs a survey link of the form `/?study=...`. Please use the link you were given."
CLOSED_TEXT = "This survey is closed. Thank you for your interest!"
DONE_TEXT = "## Thank you!\n\nAll your ratings are saved. You can close this page."
RATE_HINT = "How good is the quality of this photo? Click a score or press a key from 1 to 5."
FLIP_HINT = (
    "Which version of this photo looks better? You see version A; press the space bar, tap the photo or click "
    "**Flip** to see version B in the same place, as often as you like."
)
SIDE_BY_SIDE_HINT = "Which version of this photo looks better, A or B?"
CHOOSE_KEYS = "Press **←** or click **A is better**, or **→** or **B is better**."
TIE_KEYS = " If you see no difference at all, press **↓** or click **No difference**."
#: Browser script: keys 1–5 click the visible score buttons, ←/→/↓ the choice buttons and space the Flip button (not
#: while typing in a text field); a click on a flipped photo flips it too.
KEYS_JS = """
if (!window.srLabSurveyKeys) {
  window.srLabSurveyKeys = true;
  const keys = {ArrowLeft: "survey-choose-left", ArrowRight: "survey-choose-right", ArrowDown: "survey-choose-tie",
                " ": "survey-flip"};
  document.addEventListener("keydown", (event) => {
    const target = event.target;
    if (event.repeat || event.ctrlKey || event.metaKey || event.altKey) return;
    if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.isContentEditable)) return;
    const button = document.getElementById(keys[event.key] || "survey-score-" + event.key);
    if (button && button.offsetParent !== null) { event.preventDefault(); button.click(); }
  });
  document.addEventListener("click", (event) => {
    if (event.target.closest && event.target.closest("#survey-pair.flip img")) {
      document.getElementById("survey-flip").click();
    }
  });
}
"""
#: Browser script of the Flip button: show the other version (``data-show`` on the pair; Gradio leaves it alone).
FLIP_JS = """() => {
  const pair = document.getElementById("survey-pair");
  pair.dataset.show = pair.dataset.show === "b" ? "a" : "b";
}"""
#: Browser script run before a choice is sent: the next pair starts at version A. Passes the inputs on unchanged.
SHOW_A_JS = """(...inputs) => { document.getElementById("survey-pair").dataset.show = "a"; return inputs; }"""
#: Show stimuli at their own pixel size (scroll if larger than the window), never rescaled; a flipped pair stacks
#: both versions in one place and hides the one not shown (both stay loaded, so flipping is instant).
FULL_SIZE_CSS = """<style>
#survey-stimulus img, #survey-pair img { width: auto !important; height: auto !important; max-width: none !important;
  max-height: none !important; object-fit: none !important; image-rendering: pixelated; }
#survey-stimulus, #survey-pair > * { overflow: auto; }
#survey-pair.flip { display: grid !important; }
#survey-pair.flip > * { grid-area: 1 / 1; }
#survey-pair.flip:not([data-show="b"]) > #survey-version-b, #survey-pair.flip[data-show="b"] > #survey-version-a {
  visibility: hidden; }
</style>"""

View = Literal["welcome", "rate", "choose", "done", "closed", "invalid"]


@dataclass(frozen=True)
class SurveyPage:
    """Everything the Survey tab shows at one moment.

    ``token`` is the rater's token ("" before they start); ``text`` is Markdown (instructions or a message);
    ``stimulus`` the opaque id of the shown stimulus (ACR) or pair (PC) ("" when none); images are stored PNG files:
    ``image`` the stimulus to rate, ``version_a`` and ``version_b`` the pair to compare. ``allow_tie`` and
    ``presentation`` say how a pair comparison asks.
    """

    view: View
    token: str = ""
    text: str = ""
    stimulus: str = ""
    image: Path | None = None
    done: int = 0
    total: int = 0
    best_example: Path | None = None
    worst_example: Path | None = None
    version_a: Path | None = None
    version_b: Path | None = None
    allow_tie: bool = False
    presentation: str = FLIP

    @property
    def progress_html(self) -> str:
        if not self.total:
            return ""
        verb = "compared" if self.view == "choose" else "rated"
        return f'<progress value="{self.done}" max="{self.total}"></progress> {self.done} of {self.total} {verb}'


def choose_hint(allow_tie: bool, presentation: str) -> str:
    """What to do on a pair comparison page."""
    return f"{FLIP_HINT if presentation == FLIP else SIDE_BY_SIDE_HINT} {CHOOSE_KEYS}{TIE_KEYS if allow_tie else ''}"


def welcome_text(instructions: str, protocol: str = ACR, allow_tie: bool = False, presentation: str = FLIP) -> str:
    if protocol == PC:
        return f"{instructions}\n\n**How to choose.** {choose_hint(allow_tie, presentation)}"
    return (
        f"{instructions}\n\n**The scale**\n\n{SCALE_TEXT}\n\n**Calibration.** The first photo below is an original: "
        f"an example of **5 {ACR_LABELS[5]}**. The second is a deliberately blocky version of it: an example of "
        f"**1 {ACR_LABELS[1]}**. Neither is part of the survey."
    )


def page_for(store: Store, state: Progress) -> SurveyPage:
    """The page of a rater who has started: the next stimulus or pair, the end page, or the closed page."""
    if state.finished:
        return SurveyPage("done", state.token, DONE_TEXT, done=state.done, total=state.total)
    if not state.study_open:
        return SurveyPage("closed", state.token, CLOSED_TEXT, done=state.done, total=state.total)
    if state.pair is not None:
        version_a, version_b = pair_files(store, state)
        return SurveyPage(
            "choose", state.token, choose_hint(state.allow_tie, state.presentation), state.stimulus or "",
            done=state.done, total=state.total, version_a=version_a, version_b=version_b, allow_tie=state.allow_tie,
            presentation=state.presentation,
        )  # fmt: skip
    return SurveyPage(
        "rate", state.token, RATE_HINT, state.stimulus or "", stimulus_file(store, state), state.done, state.total
    )


def resumed(store: Store, study_id: str, token: str) -> SurveyPage | None:
    """The page of rater ``token`` if they started this study, else ``None`` (no token, or one from another study
    or an older database: the visitor starts afresh). A database failure is an error, not a reason to start afresh."""
    if not token:
        return None
    try:
        return page_for(store, rater_progress(store, study_id, token))
    except StorageError as error:
        raise gr.Error(str(error)) from error
    except SurveyError:
        return None


def survey_open(store: Store, study_id: str, token: str) -> SurveyPage:
    """The page for someone arriving at ``/?study=study_id``: resume rater ``token`` if they started, else welcome."""
    if not study_id:
        return SurveyPage("invalid", text=INVALID_LINK)
    if page := resumed(store, study_id, token):
        return page
    try:
        intro = study_intro(store, study_id)
    except SurveyError as error:
        return SurveyPage("invalid", text=str(error))
    if not intro.study_open:
        return SurveyPage("closed", text=CLOSED_TEXT)
    if intro.protocol == PC:  # a choice between two versions needs no calibration
        text = welcome_text(intro.instructions, PC, intro.allow_tie, intro.presentation)
        return SurveyPage("welcome", text=text, allow_tie=intro.allow_tie, presentation=intro.presentation)
    return SurveyPage(
        "welcome",
        text=welcome_text(intro.instructions),
        best_example=intro.best_example,
        worst_example=intro.worst_example,
    )


def survey_start(store: Store, study_id: str, token: str, self_report: str = "") -> SurveyPage:
    """Start rating: resume rater ``token`` if it belongs to this study, else register a new anonymous rater."""
    if page := resumed(store, study_id, token):
        return page
    try:
        return page_for(store, start_rater(store, study_id, self_report or ""))
    except SurveyError as error:
        raise gr.Error(str(error)) from error


def survey_rate(store: Store, study_id: str, token: str, stimulus_id: str, score: float) -> SurveyPage:
    """Save ``score`` (1–5) for the stimulus shown and move on; a repeated submission is ignored."""
    try:
        return page_for(store, submit_rating(store, study_id, token, stimulus_id, score))
    except SurveyError as error:
        raise gr.Error(str(error)) from error


def survey_choose(store: Store, study_id: str, token: str, trial_id: str, choice: str) -> SurveyPage:
    """Save ``choice`` (``left``: A is better, ``right``: B is, ``tie``: no difference) for the pair shown and move
    on; a repeated submission is ignored."""
    try:
        return page_for(store, submit_choice(store, study_id, token, trial_id, choice))
    except SurveyError as error:
        raise gr.Error(str(error)) from error


def select_survey_tab(request: gr.Request) -> gr.Tabs:
    """On page load: open the Survey tab (id :data:`SURVEY_TAB_ID`) when the address holds ``?study=``."""
    return gr.Tabs(selected=SURVEY_TAB_ID) if request.query_params.get(STUDY_PARAM) else gr.Tabs()


def build_survey_tab(store: Store) -> None:
    """Lay out the Survey tab inside the current ``gr.Blocks`` context and wire its events.

    It reads ``?study=`` from the page address on load and keeps rater tokens in the browser's local storage.
    The stored stimuli are served as static files: written once at study creation, never changed.
    """
    gr.set_static_paths([store.stimuli_dir])
    study_box = gr.Textbox(visible=False, label="study")
    token_box = gr.Textbox(visible=False, label="token")
    stimulus_box = gr.Textbox(visible=False, label="stimulus")
    score_box = gr.Number(visible=False, label="score")  # not rounded: survey_rate refuses 2.5 itself
    choice_box = gr.Textbox(visible=False, label="choice")
    gr.HTML("", js_on_load=KEYS_JS, head=FULL_SIZE_CSS)
    status = gr.Markdown()
    with gr.Column(visible=False) as welcome:
        instructions = gr.Markdown()
        with gr.Row() as examples:
            best = gr.Image(label="Example of 5", format="png", interactive=False, buttons=[])
            worst = gr.Image(label="Example of 1", format="png", interactive=False, buttons=[])
        self_report = gr.Textbox(
            label="Optional: anything we should know (screen, glasses...)", max_length=500, max_lines=2
        )
        start = gr.Button("Start", variant="primary")
    progress = gr.HTML()
    with gr.Column(visible=False) as rating:
        gr.Markdown(RATE_HINT)
        with gr.Row():
            buttons = {
                score: gr.Button(f"{score} {ACR_LABELS[score]}", elem_id=f"survey-score-{score}")
                for score in sorted(ACR_LABELS)
            }
        stimulus = gr.Image(
            label="Photo to rate", show_label=False, format="png", interactive=False, buttons=[],
            elem_id="survey-stimulus",
        )  # fmt: skip
    with gr.Column(visible=False) as choosing:
        hint = gr.Markdown()
        with gr.Row():
            choose_a = gr.Button("◀ A is better", elem_id="survey-choose-left")
            flip = gr.Button("Flip", elem_id="survey-flip")
            tie = gr.Button("No difference", elem_id="survey-choose-tie")
            choose_b = gr.Button("B is better ▶", elem_id="survey-choose-right")
        with gr.Row(elem_id="survey-pair") as pair:
            version_a = gr.Image(label="A", format="png", interactive=False, buttons=[], elem_id="survey-version-a")
            version_b = gr.Image(label="B", format="png", interactive=False, buttons=[], elem_id="survey-version-b")
    outputs = [
        token_box, stimulus_box, status, instructions, best, worst, stimulus, progress, welcome, rating, examples,
        choosing, hint, version_a, version_b, flip, tie, pair,
    ]  # fmt: skip

    def show(page: SurveyPage) -> tuple[object, ...]:
        welcome_page, rate_page, choose_page = page.view == "welcome", page.view == "rate", page.view == "choose"
        return (
            page.token, page.stimulus, "" if welcome_page or rate_page or choose_page else page.text,
            page.text if welcome_page else "", page.best_example, page.worst_example, page.image,
            page.progress_html if rate_page or choose_page else "", gr.Column(visible=welcome_page),
            gr.Column(visible=rate_page), gr.Row(visible=page.best_example is not None),
            gr.Column(visible=choose_page), page.text if choose_page else "", page.version_a, page.version_b,
            gr.Button(visible=page.presentation == FLIP), gr.Button(visible=page.allow_tie),
            gr.Row(elem_classes=[page.presentation]),
        )  # fmt: skip

    def from_address(request: gr.Request) -> str:
        return request.query_params.get(STUDY_PARAM, "")

    survey = {"concurrency_id": CONCURRENCY_ID, "concurrency_limit": CONCURRENCY_LIMIT}
    private = {"api_visibility": "private", **survey}
    gr.on(triggers=None, fn=from_address, inputs=None, outputs=[study_box], **private).then(
        lambda s, t: show(survey_open(store, s, t)), [study_box, token_box], outputs, js=RECALL_TOKEN_JS,
        api_name="survey_open", **survey,
    )  # fmt: skip
    start.click(
        lambda s, t, r: show(survey_start(store, s, t, r)), [study_box, token_box, self_report], outputs,
        api_name="survey_start", **survey,
    ).then(None, [study_box, token_box], None, js=REMEMBER_TOKEN_JS)  # fmt: skip
    rate = partial(survey_rate, store)
    for score, button in buttons.items():
        # "multiple": a click while the previous one is still being answered is sent too (it carries the id of the
        # stimulus on screen, so a second score for it is ignored) instead of being dropped silently.
        button.click(
            lambda s, t, i, score=score: show(rate(s, t, i, score)), [study_box, token_box, stimulus_box], outputs,
            trigger_mode="multiple", **private,
        )  # fmt: skip
    gr.on(
        triggers=[], fn=lambda s, t, i, score: show(rate(s, t, i, score)),
        inputs=[study_box, token_box, stimulus_box, score_box], outputs=outputs, api_name="survey_rate", **survey,
    )  # fmt: skip
    choose = partial(survey_choose, store)
    flip.click(None, js=FLIP_JS)
    for choice, button in ((LEFT, choose_a), (RIGHT, choose_b), (TIE, tie)):
        button.click(
            lambda s, t, i, choice=choice: show(choose(s, t, i, choice)), [study_box, token_box, stimulus_box],
            outputs, js=SHOW_A_JS, trigger_mode="multiple", **private,
        )  # fmt: skip
    gr.on(
        triggers=[], fn=lambda s, t, i, c: show(choose(s, t, i, c)),
        inputs=[study_box, token_box, stimulus_box, choice_box], outputs=outputs, api_name="survey_choose", **survey,
    )  # fmt: skip
