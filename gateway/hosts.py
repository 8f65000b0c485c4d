"""Host and Origin checks: a web page on another site must not drive the gateway through a browser.

Two attacks reach a gateway a browser can see (`make run` on a developer's machine, keys off): DNS rebinding (a
page on attacker.example whose name re-resolves to 127.0.0.1 talks to the gateway as its own origin, so its
requests carry `Host: attacker.example`) and cross-site request forgery (a page posts to 127.0.0.1:8080 and its
requests carry `Origin: http://attacker.example`). The first is refused by the Host check, the second by the
Origin check on every write and on the video stream's handshake.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.error_codes import ErrorCode
from gateway.errors import error_response

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
WILDCARD_BINDS = {"", "0.0.0.0", "::", "[::]"}


def hostname(netloc: str) -> str | None:
    """The lower-case host name of `host[:port]` (IPv6 without brackets), or None when it is malformed."""
    try:
        parts = urlsplit(f"//{netloc}")
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in 0..65535
    except ValueError:
        return None
    if not parts.hostname or parts.username is not None or parts.path or parts.query or parts.fragment:
        return None
    return parts.hostname.rstrip(".")


def allowed_names(allowed_hosts: Iterable[str], bind_host: str) -> set[str]:
    names = {name.strip().lower().strip("[]").rstrip(".") for name in allowed_hosts}
    if bind_host not in WILDCARD_BINDS:
        names.add(bind_host.lower().strip("[]"))
    return names


class HostOriginCheck:
    """400 `invalid_host` for a Host not served; 403 `cross_origin` for a write or a websocket handshake whose
    Origin is neither the request's own host nor an allowed name."""

    def __init__(self, app: ASGIApp, allowed_hosts: Iterable[str], bind_host: str) -> None:
        self.app = app
        self.names = allowed_names(allowed_hosts, bind_host)
        self.any_host = "*" in self.names

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        host_header = headers.get("host", "")
        host = hostname(host_header)
        if host is None or not (self.any_host or host in self.names):
            await self._refuse(
                scope, receive, send, ErrorCode.INVALID_HOST, f"this gateway does not serve {host_header!r}"
            )
            return
        origin = headers.get("origin")
        checked = scope["type"] == "websocket" or scope["method"] not in SAFE_METHODS
        if checked and origin is not None and not self._same_site(origin, host_header):
            message = f"requests from web pages of {origin!r} may not write here or open the video stream"
            await self._refuse(scope, receive, send, ErrorCode.CROSS_ORIGIN, message)
            return
        await self.app(scope, receive, send)

    def _same_site(self, origin: str, host_header: str) -> bool:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return False  # `Origin: null` (a sandboxed frame, a file: page) and anything malformed
        if parts.netloc.lower() == host_header.lower():
            return True  # the gateway's own pages: the demo, /docs
        name = hostname(parts.netloc)
        return name is not None and name in self.names

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, code: ErrorCode, message: str) -> None:
        if scope["type"] == "websocket":
            # Closing before accepting answers the handshake with 403: a browser shows no body on a websocket.
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1008, "reason": code.value})
            return
        await error_response(code.http_status, code, message)(scope, receive, send)
