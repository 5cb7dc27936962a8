"""The rater page: what a rater sees, from the link ``/rate/<study id>`` to the thank-you page, outside Gradio.

One plain HTML page (``rater.html``: its styles and script inline, nothing else loaded) and a few JSON endpoints,
served by the same server as the Gradio app but not through Gradio's queue (:class:`BlocksWithRaterPage`):

- ``GET /rate/<study>``: the page. ``?PROLIFIC_PID=``, ``?workerId=`` (MTurk) or ``?rater=`` name the rater on a crowd
  platform: that id is stored with the rater; it resumes them only together with their token (see below).
- ``POST /rate/<study>/open`` ``{token, external_id}``: the page for someone arriving (:func:`rater_open`).
- ``POST /rate/<study>/start`` ``{token, external_id, self_report}``: start or resume rating (:func:`rater_start`).
- ``POST /rate/<study>/answer`` ``{token, item, answer, viewport_width, viewport_height, device_pixel_ratio, scale,
  display_ms}``: a score (ACR: a JSON integer 1–5) or a choice (PC: exactly ``"left"``, ``"right"`` or ``"tie"``)
  with how the photo was shown (integers, and finite numbers for ``device_pixel_ratio`` and ``scale``), at least the
  study's ``min_view_ms`` after the photo was sent (:func:`rater_answer`).
- ``GET /rate/<study>/<id>.png``: a stimulus or calibration PNG (:func:`png_response`).

The endpoints answer with a :class:`RaterPage` as JSON, or ``{"error": message}`` with status 400 (a request the
survey refuses, or one that is not the JSON an endpoint takes), 429 (too many requests from one address) or 503 (the
database failed; nothing was lost, retrying helps); what a request must be and how often it may come is
:mod:`survey.ui.rater_requests`.

Identity: the rater's token is kept in the browser's local storage and sent with ``open`` and ``start``, so a reload
resumes at the same photo. A crowd id that has started already resumes only with its own token; without it the
request is refused (:data:`~survey.raters.ID_TAKEN`) until the study's owner resets the rater.

Pages: *welcome* (instructions; for ACR the scale and the calibration examples, the original as the top of the scale
and nearest-neighbour as the bottom; an optional self-report, Start), *rate* (ACR: one photo, buttons or keys 1–5),
*choose* (PC: versions A and B of one photo at the same place, flipped by a tap, the Flip button or the space bar, or
side by side; buttons or keys ←/→, ↓ or a button for "no difference" where allowed), *done* (with the completion code
when the study has one), *closed* and *invalid*. Photos are shown at their own size, one image pixel per CSS pixel;
one larger than the screen is panned inside its frame, and the answer buttons stay on the screen.

Blinding: nothing a rater receives names a method, an image or a server path. Stimuli are their stored PNGs, named
by random tokens (unrelated to the method, the image and the order they were made in), served as they are, with the
same headers for every file of a study (the same ``Last-Modified``, no ``ETag``, ``no-transform`` so that no proxy
compresses them); all versions of one image have the same size in pixels and the same bytes count and chunk layout
(stored uncompressed, :func:`survey.stimuli.png_bytes`); which condition is version A is balanced across raters.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from email.utils import formatdate
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, urlencode

import gradio as gr
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from slowapi import Limiter
from slowapi.util import get_remote_address
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from sr_app.web import MIDDLEWARE
from survey.answers import NOT_REPORTED, Viewing, submit_choice, submit_rating
from survey.db import ACR, ACR_LABELS, FLIP, PC, Store
from survey.errors import StorageError, StudyUnavailable, SurveyError
from survey.raters import (
    CLOSED_TEXT,
    FULL_TEXT,
    Progress,
    Window,
    progress,
    resume_token,
    start_rater,
    study_intro,
)
from survey.studies import RATE_PATH
from survey.ui.rater_requests import NO_STORE, OPAQUE_ID, Answer, Arrival, RateLimits, RaterRoute, Start, error_response

#: The query parameter of the rater links of earlier versions, ``/?study=<id>``; they are redirected to the page.
STUDY_PARAM = "study"
PAGE_HTML = (Path(__file__).parent / "rater.html").read_text(encoding="utf-8")
#: The scale as the page shows it, top first.
SCALE = tuple(ACR_LABELS.items())
INVALID_LINK = "This survey link is not valid. Please check the address you were given."
#: Headers of every stimulus file (with the study's one Last-Modified): cached by the browser, never revalidated, never
#: compressed on the way (the files are uncompressed so that their size tells nothing; a gzip would undo that).
PNG_HEADERS = {
    "Cache-Control": "private, max-age=31536000, immutable, no-transform",
    "X-Content-Type-Options": "nosniff",
}

View = Literal["welcome", "rate", "choose", "done", "closed", "invalid"]


@dataclasses.dataclass(frozen=True)
class RaterPage:
    """Everything the page shows at one moment, sent as JSON.

    ``token`` is the rater's ("" before they start); ``message`` the text of the closed and invalid pages;
    ``instructions``, ``scale`` ((score, label), top first; ACR) and ``examples`` (the opaque ids of the top and
    bottom calibration PNGs; ACR) are for the welcome page. ``item`` is the opaque id of what to answer (a stimulus
    or a trial) and ``images`` the opaque ids of its PNGs (one, or versions A and B); ``done`` of ``total`` are
    answered; the answer buttons stay disabled for ``min_view_ms`` milliseconds after the page arrives.
    ``completion_code`` is shown on the done page ("" when the study has none, or withholds it from this rater:
    ``failed_checks`` then says why). ``training`` marks an item of the training round.
    """

    view: View
    token: str = ""
    message: str = ""
    protocol: str = ACR
    instructions: str = ""
    scale: tuple[tuple[int, str], ...] = SCALE
    examples: tuple[str, str] | None = None
    item: str = ""
    images: tuple[str, ...] = ()
    done: int = 0
    total: int = 0
    allow_tie: bool = False
    presentation: str = FLIP
    min_view_ms: int = 0
    completion_code: str = ""
    training: bool = False
    failed_checks: tuple[str, ...] = ()


def page_for(state: Progress) -> RaterPage:
    """The page of a rater who has started: the next stimulus or pair, the end page, or the closed page."""
    counts = {"token": state.token, "done": state.done, "total": state.total}
    if state.finished:
        return RaterPage(
            "done", completion_code=state.completion_code or "", failed_checks=state.failed_checks, **counts
        )
    if not state.study_open:
        return RaterPage("closed", message=CLOSED_TEXT, **counts)
    if state.pair is not None:
        return RaterPage(
            "choose", protocol=PC, item=state.stimulus or "", images=state.pair, allow_tie=state.allow_tie,
            presentation=state.presentation, min_view_ms=state.min_view_ms, training=state.training, **counts,
        )  # fmt: skip
    item = state.stimulus or ""
    return RaterPage(
        "rate", item=item, images=(item,), min_view_ms=state.min_view_ms, training=state.training, **counts
    )


def resumed(store: Store, study_id: str, token: str, external_id: str) -> RaterPage | None:
    """The page of the rater who holds ``token`` and, if given, has the crowd id ``external_id``; ``None`` when the
    visitor is someone new. :class:`SurveyError` when ``external_id`` has started with another token
    (:func:`~survey.raters.resume_token`). A database failure is an error, not a reason to start afresh."""
    token = resume_token(store, study_id, token, external_id)
    if not token:
        return None
    try:
        return page_for(progress(store, study_id, token))
    except StorageError:
        raise
    except SurveyError:  # a token from another study or an older database
        return None


def rater_open(store: Store, study_id: str, token: str = "", external_id: str = "") -> RaterPage:
    """The page for someone arriving at the rater link: resume them if they started, else welcome them."""
    if not OPAQUE_ID.fullmatch(study_id):
        return RaterPage("invalid", message=INVALID_LINK)
    if page := resumed(store, study_id, token, external_id):
        return page
    try:
        intro = study_intro(store, study_id)
    except SurveyError:
        return RaterPage("invalid", message=INVALID_LINK)
    if not intro.study_open or intro.full:
        return RaterPage("closed", message=CLOSED_TEXT if not intro.study_open else FULL_TEXT)
    if intro.protocol == PC:  # a choice between two versions needs no calibration
        return RaterPage(
            "welcome", protocol=PC, instructions=intro.instructions, allow_tie=intro.allow_tie,
            presentation=intro.presentation,
        )  # fmt: skip
    return RaterPage("welcome", instructions=intro.instructions, examples=(intro.best_example, intro.worst_example))


def rater_start(
    store: Store,
    study_id: str,
    token: str = "",
    external_id: str = "",
    self_report: str = "",
    window: Window = (None, None, None),
) -> RaterPage:
    """Start rating: resume the rater if they started this study, else register a new one (or say that the study is
    closed or full, or why the browser ``window`` does not qualify)."""
    if page := resumed(store, study_id, token, external_id):
        return page
    try:
        return page_for(start_rater(store, study_id, self_report, external_id=external_id, window=window))
    except StudyUnavailable as error:
        return RaterPage("closed", message=str(error))


def rater_answer(
    store: Store, study_id: str, token: str, item: str, answer: int | str, viewing: Viewing = NOT_REPORTED
) -> RaterPage:
    """Save ``answer`` to ``item`` and move on: an ``int`` is a score 1–5 (ACR), a ``str`` a choice for a pair (PC:
    ``left``, A is better; ``right``, B is; ``tie``, no difference). A repeated answer is ignored."""
    if isinstance(answer, str):
        return page_for(submit_choice(store, study_id, token, item, answer, viewing))
    return page_for(submit_rating(store, study_id, token, item, answer, viewing))


def png_response(store: Store, study_id: str, name: str) -> Response:
    """The stored PNG ``name`` (an opaque id) of study ``study_id`` as it is, with :data:`PNG_HEADERS` and the
    modification time of the study's folder (when its last PNG was written) as ``Last-Modified``: the same for every
    file of the study. 404 for anything else."""
    if not (OPAQUE_ID.fullmatch(study_id) and OPAQUE_ID.fullmatch(name)):
        return Response(status_code=404)
    path = store.png_path(study_id, name)
    try:
        content, modified = path.read_bytes(), path.parent.stat().st_mtime
    except FileNotFoundError:
        return Response(status_code=404)
    headers = {**PNG_HEADERS, "Last-Modified": formatdate(modified, usegmt=True)}
    return Response(content, media_type="image/png", headers=headers)


def as_json(make_page: Callable[[], RaterPage]) -> JSONResponse:
    """``make_page()`` as JSON; a refused request as ``{"error": message}`` with status 400, a database failure 503."""
    try:
        return JSONResponse(dataclasses.asdict(make_page()), headers=NO_STORE)
    except StorageError as error:
        return error_response(str(error), 503)
    except SurveyError as error:
        return error_response(str(error), 400)


def rater_router(store: Store, limits: RateLimits | None = None) -> APIRouter:
    """The page and its endpoints (see the module's docstring), on ``store``, with ``limits`` per client address
    (default :meth:`RateLimits.from_env`). Plain functions run in the server's thread pool, outside Gradio's queue."""
    limits = limits or RateLimits.from_env()
    limiter = Limiter(key_func=get_remote_address, strategy="moving-window", key_style="endpoint")

    def limited(limit: str | None) -> Callable[[Callable[..., JSONResponse]], Callable[..., JSONResponse]]:
        return limiter.limit(limit) if limit else lambda endpoint: endpoint

    router = APIRouter(prefix=RATE_PATH, route_class=RaterRoute)

    @router.get("/{study_id}", response_class=HTMLResponse)
    def page(study_id: str) -> HTMLResponse:
        return HTMLResponse(PAGE_HTML, headers={"Cache-Control": "no-cache"})

    @router.post("/{study_id}/open")
    @limited(limits.open)
    def open_page(request: Request, study_id: str, body: Arrival) -> JSONResponse:
        return as_json(lambda: rater_open(store, study_id, body.token, body.external_id))

    @router.post("/{study_id}/start")
    @limited(limits.start)
    def start(request: Request, study_id: str, body: Start) -> JSONResponse:
        return as_json(
            lambda: rater_start(store, study_id, body.token, body.external_id, body.self_report, body.window())
        )

    @router.post("/{study_id}/answer")
    @limited(limits.answer)
    def answer(request: Request, study_id: str, body: Answer) -> JSONResponse:
        return as_json(lambda: rater_answer(store, study_id, body.token, body.item, body.answer, body.viewing()))

    @router.get("/{study_id}/{name}.png")
    def png(study_id: str, name: str) -> Response:
        return png_response(store, study_id, name)

    return router


class OldLinkRedirect:
    """ASGI middleware: ``GET /?study=<id>&...`` (a rater link of earlier versions) is redirected to the rater page,
    ``rate/<id>?...`` (relative, so that it works under a path prefix), keeping the other parameters."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/" and scope["method"] in ("GET", "HEAD"):
            query = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
            study = next((value for key, value in query if key == STUDY_PARAM), "")
            if study:
                rest = urlencode([(key, value) for key, value in query if key != STUDY_PARAM])
                target = f"{RATE_PATH.lstrip('/')}/{quote(study, safe='')}" + (f"?{rest}" if rest else "")
                await RedirectResponse(target, status_code=301)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def app_kwargs(store: Store, limits: RateLimits | None = None) -> dict[str, Any]:
    """Arguments of the FastAPI app under Gradio (``launch(app_kwargs=...)``) that add the rater page's routes (rate
    limited by ``limits``, default :meth:`RateLimits.from_env`), matched before Gradio's own, :class:`OldLinkRedirect`
    and the app's security headers and body limit."""
    return {"routes": rater_router(store, limits).routes, "middleware": [*MIDDLEWARE, Middleware(OldLinkRedirect)]}


class BlocksWithRaterPage(gr.Blocks):
    """``gr.Blocks`` whose server also serves the rater page of the studies in ``store`` (:func:`app_kwargs`, rate
    limited by ``limits``) and redirects old rater links to it, however it is launched."""

    def __init__(self, store: Store, limits: RateLimits | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rater_store = store
        self.rater_limits = limits

    def launch(self, *args: Any, **kwargs: Any) -> Any:
        rater_page = app_kwargs(self.rater_store, self.rater_limits)
        kwargs["app_kwargs"] = {**rater_page, **(kwargs.get("app_kwargs") or {})}
        return super().launch(*args, **kwargs)
