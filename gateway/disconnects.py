"""A client that goes away: no error, no 500, and no work left running for it.

Two moments: mid-upload, reading the body raises Starlette's `ClientDisconnect` (answered by the handler in
gateway/errors.py); after the body, while the request waits on the services, nothing would notice, so this
middleware listens for the `http.disconnect` that follows and cancels the request's task, which cancels its gRPC
calls (a service drops cancelled calls still queued for a model thread). Either way the request is recorded with
status 499 (nginx's "client closed request"): the answer goes nowhere, the metrics see no server error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("faceplane.gateway")
CLIENT_CLOSED = 499


async def send_client_closed(send: Send) -> None:
    """What the metrics and access log see for a request whose client left (uvicorn sends nothing on a closed
    connection)."""
    await send({"type": "http.response.start", "status": CLIENT_CLOSED, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def log_disconnect(scope: Scope, when: str) -> None:
    log.info("client disconnected", extra={"path": scope.get("path"), "method": scope.get("method"), "when": when})


class CancelOnDisconnect:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_read = False
        answered = False
        gone: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        handler = asyncio.current_task()
        assert handler is not None
        cancelled_by_us = False

        async def watch() -> None:
            nonlocal cancelled_by_us
            message = await receive()  # after the whole body: only http.disconnect comes
            gone.set_result(message)
            if message["type"] == "http.disconnect" and not answered:
                cancelled_by_us = True
                handler.cancel()

        watcher: asyncio.Task | None = None

        async def tracked_receive() -> Message:
            nonlocal body_read, watcher
            if body_read:  # a late reader shares the watcher's message instead of racing it for one
                return await asyncio.shield(gone)
            message = await receive()
            if message["type"] == "http.request" and not message.get("more_body", False):
                body_read = True
                watcher = asyncio.create_task(watch())
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                answered = True
            await send(message)

        try:
            await self.app(scope, tracked_receive, tracked_send)
        except asyncio.CancelledError:
            if not cancelled_by_us:
                raise
            handler.uncancel()
            log_disconnect(scope, "waiting for the answer")
            await send_client_closed(send)
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
