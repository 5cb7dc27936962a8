"""What the rater page's JSON endpoints accept, and how they refuse the rest: strict request bodies
(:class:`Arrival`, :class:`Start`, :class:`Answer`), rate limits per client address (:class:`RateLimits`), and
every refusal as ``{"error": message}`` (:class:`RaterRoute`): status 400 for a body that is not the JSON an
endpoint takes, 429 for too many requests.

Tokens and ids are 22 URL-safe characters (:data:`OPAQUE_ID`); every text field has a length limit, which pydantic
checks on the text as Unicode, so a lone surrogate (JSON can spell ``"\ud800"``) is refused like any other malformed
field. The routes themselves are :mod:`survey.ui.rate`.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from limits import parse_many
from pydantic import BaseModel, ConfigDict, Field, StrictInt
from slowapi.errors import RateLimitExceeded
from starlette.exceptions import HTTPException

from survey.answers import Viewing

#: Opaque ids (study public ids, stimulus and calibration tokens): 22 URL-safe characters, see ``survey.db.new_token``.
OPAQUE_ID = re.compile(r"[A-Za-z0-9_-]{22}")
TOO_MANY_REQUESTS = "Too many requests from your address (at most {limit}). Please wait a moment and try again."
#: The environment variables that override the default rate limits, by endpoint (``SR_LAB_RATE_LIMIT_ANSWER`` …),
#: and the value that turns an endpoint's limit off.
RATE_LIMIT_ENV, NO_LIMIT = "SR_LAB_RATE_LIMIT_", "none"
NO_STORE = {"Cache-Control": "no-store"}


def error_response(message: str, status_code: int) -> JSONResponse:
    """``{"error": message}`` with ``status_code``: how the page is told why a request was refused."""
    return JSONResponse({"error": message}, status_code=status_code, headers=NO_STORE)


@dataclasses.dataclass(frozen=True)
class RateLimits:
    """How many requests one client address may make to each rater endpoint, in the notation of the ``limits``
    package (``"3/second;60/minute"``: both apply), counted over moving windows in the app process's memory; ``None``
    for no limit. The defaults leave a rater far from them (the page sends one ``open`` per load, one ``start``, and
    one answer per photo, at most one a second under the default minimum viewing time) and stop a script. Raters
    behind one address (a lab's NAT) share its limits. The page itself and the PNGs are not limited."""

    open: str | None = "60/minute"
    start: str | None = "10/minute;50/hour"
    answer: str | None = "3/second;60/minute"

    def __post_init__(self) -> None:
        for endpoint, limit in dataclasses.asdict(self).items():
            if limit is not None:
                try:
                    parse_many(limit)
                except ValueError as error:
                    raise ValueError(f"The rate limit of {endpoint} is not valid: {error}.") from error

    @classmethod
    def from_env(cls) -> RateLimits:
        """The defaults, each replaced by ``$SR_LAB_RATE_LIMIT_<ENDPOINT>`` where set (``SR_LAB_RATE_LIMIT_ANSWER=
        "5/second;100/minute"``; :data:`NO_LIMIT`, ``none``, for none)."""
        limits = dataclasses.asdict(cls())
        for endpoint, limit in limits.items():
            value = os.environ.get(f"{RATE_LIMIT_ENV}{endpoint.upper()}", limit)
            limits[endpoint] = None if value == NO_LIMIT else value
        return cls(**limits)

    def __str__(self) -> str:
        return ", ".join(f"{endpoint} {limit or NO_LIMIT}" for endpoint, limit in dataclasses.asdict(self).items())


class RaterRoute(APIRoute):
    """A route of the rater page whose refusals come as ``{"error": message}``, as the page shows them: a body that is
    not JSON, or not what the endpoint takes (a wrong type, a field too long, an id of the wrong form), status 400
    (FastAPI would answer 422 and echo the input, which fails on ``Infinity``); too many requests 429."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handle_refusals(request: Request) -> Response:
            try:
                return await handle(request)
            except RequestValidationError as error:
                return error_response(invalid_request(error), 400)
            except RateLimitExceeded as error:
                return error_response(TOO_MANY_REQUESTS.format(limit=error.detail), 429)
            except HTTPException as error:  # a body FastAPI could not parse at all (nested too deep)
                return error_response(str(error.detail), error.status_code)

        return handle_refusals


def invalid_request(error: RequestValidationError) -> str:
    """What is wrong with a request body, for the rater page's error line: its first problem."""
    problem = error.errors()[0]
    if problem["type"] == "json_invalid":
        return "The request is not valid JSON."
    field = ".".join(str(part) for part in problem["loc"][1:2])  # the field of the body, not a union member
    return f"The request is not valid: {field or 'the body'}: {problem['msg']}."


class RaterRequest(BaseModel):
    """A request body of the rater page: JSON types are taken as they are (strict: no ``true`` for 1, no ``"4"`` for
    4, no ``4.0`` for 4); unknown fields are ignored."""

    model_config = ConfigDict(strict=True)


#: A rater token, stimulus id or trial id.
OpaqueId = Annotated[str, Field(pattern=f"^{OPAQUE_ID.pattern}$")]
#: The token the browser kept: a rater token, or "" before the rater has started.
KeptToken = Annotated[str, Field(pattern=f"^({OPAQUE_ID.pattern})?$")]
#: A finite number (JSON allows no ``Infinity`` or ``NaN``, but Python's parser reads them).
Finite = Annotated[float, Field(allow_inf_nan=False)]


class Arrival(RaterRequest):
    """The body of ``open``: the token the browser kept ("" if none) and the crowd platform's rater id, if any."""

    token: KeptToken = ""
    external_id: str = Field("", max_length=1000)


class Start(Arrival):
    """The body of ``start``: with the browser window's CSS size and device pixel ratio, which a study that qualifies
    its raters checks (:func:`survey.crowd.qualification_problem`)."""

    self_report: str = Field("", max_length=10_000)
    viewport_width: int | None = None
    viewport_height: int | None = None
    device_pixel_ratio: Finite | None = None

    def window(self) -> tuple[int | None, int | None, float | None]:
        """The window as reported, each value within its range of :data:`survey.answers.VIEWING_RANGES` (as in an
        answer; :class:`~survey.errors.SurveyError` otherwise)."""
        viewing = Viewing(self.viewport_width, self.viewport_height, self.device_pixel_ratio)
        return viewing.viewport_width, viewing.viewport_height, viewing.device_pixel_ratio


class Answer(RaterRequest):
    """The body of ``answer``: what was answered and how the photo was shown (:class:`~survey.answers.Viewing`). A
    score is a JSON integer, a choice a string; :mod:`survey.answers` checks the scale and the choices."""

    token: OpaqueId
    item: OpaqueId
    answer: StrictInt | Annotated[str, Field(max_length=10)]
    viewport_width: int | None = None
    viewport_height: int | None = None
    device_pixel_ratio: Finite | None = None
    scale: Finite | None = None
    display_ms: int | None = None

    def viewing(self) -> Viewing:
        return Viewing(**{field.name: getattr(self, field.name) for field in dataclasses.fields(Viewing)})
