"""Security headers on every answer, and a Content-Security-Policy for each kind of page.

JSON and images load nothing and are never framed: the strictest policy. The demo and the OpenAPI pages load only
their own files (no inline script, no CDN); a route that serves a page sets its own policy, which is kept.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = "content-security-policy"
_FRAMING_AND_FORMS = "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
API_CSP = "default-src 'none'; frame-ancestors 'none'"
# The demo: its script and style files, generated faces as data: URLs, fetch and the video stream's websocket to
# its own origin ('self' covers ws: and wss: of the same host).
DEMO_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    + _FRAMING_AND_FORMS
)
# Swagger UI and ReDoc set inline styles (ReDoc writes <style> elements) and ReDoc runs a worker from a blob: URL;
# neither runs inline script.
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    f"font-src 'self' data:; connect-src 'self'; worker-src blob:; {_FRAMING_AND_FORMS}"
)
HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    CSP: API_CSP,
}


class SecurityHeaders:
    """Adds HEADERS to every HTTP response that does not set them itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k.encode(), v.encode()) for k, v in HEADERS.items() if k.encode() not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)
