"""What every response of the app's server carries, and how much of a request it reads: ASGI middleware for an app
that anyone who can reach its port may use.

- :class:`SecurityHeaders`: a Content-Security-Policy (scripts, styles, images and connections from the app's own
  origin only, no plugins, and ``frame-ancestors 'self'``: no other site may frame the app), ``X-Content-Type-Options:
  nosniff`` and ``Referrer-Policy: same-origin`` (a shared link's id never leaves in a Referer), on every response:
  Gradio's pages and files, the rater pages, errors.
- :class:`BodyLimit`: request bodies of at most ``MAX_BODY_BYTES``; a longer ``Content-Length`` is answered 413 before
  any of the body is read, and a body without one (chunked) is cut off with 413 once it grows past the limit. Gradio's
  upload route is left to Gradio, which enforces its own ``max_file_size`` while it streams.

Gradio's page needs inline scripts and styles, and ``eval`` for the scripts the app hands it (``js=``,
``js_on_load``), so the policy allows those; what it keeps out is everything from elsewhere.
"""

from __future__ import annotations

from gradio.route_utils import API_PREFIX
from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline' 'unsafe-eval' blob:",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "media-src 'self' data: blob:",
        "font-src 'self' data:",
        "worker-src 'self' blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'self'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
#: Largest request body read, in bytes: the rater page's JSON and Gradio's queue messages are a few kB.
MAX_BODY_BYTES = 1_000_000
#: Gradio's file upload route, limited by Gradio itself (``launch(max_file_size=...)``).
UPLOAD_PATH = f"{API_PREFIX}/upload"


class SecurityHeaders:
    """ASGI middleware: :data:`SECURITY_HEADERS` on every HTTP response (replacing any of the same name)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyLimit:
    """ASGI middleware: 413 for a request body over ``max_bytes`` (see the module's docstring), except uploads.

    A body that grows past the limit while the app reads it is answered 413 at once, and the app is told the client
    has gone (``http.disconnect``); what it sends after that is dropped.
    """

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == UPLOAD_PATH:
            await self.app(scope, receive, send)
            return
        too_large = PlainTextResponse(f"Request body larger than {self.max_bytes:,} bytes", status_code=413)
        length = Headers(scope=scope).get("content-length")
        if length is not None and int(length) > self.max_bytes:  # the server has refused a malformed length
            await too_large(scope, receive, send)
            return
        received, started, refused = 0, False, False

        async def limited_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                refused = True
                if not started:  # else the app answered without reading the body; it only loses the connection
                    await too_large(scope, receive, send)
                return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if not refused:
                started = started or message["type"] == "http.response.start"
                await send(message)

        await self.app(scope, limited_receive, guarded_send)


#: The middleware of the app's server, outermost first (``FastAPI(middleware=...)``).
MIDDLEWARE = [Middleware(SecurityHeaders), Middleware(BodyLimit)]
