"""WS /v1/stream: live video. The client sends JPEG (or PNG) frames as binary messages; each answered frame
gets `{"frame", "dropped", "faces": [… "track_id" …]}`. While a frame is being analysed only the newest that
arrives meanwhile is kept: a client that sends faster than it is served loses frames, never gets behind. With
keys on, the stream holds one of its key's concurrency slots while it is open, and every analysed frame takes a
token from the key's rate."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from gateway.analysis import DetectOptions, analyze, parse_features
from gateway.auth import admit, hold, release, secret_of, spend_token
from gateway.error_codes import ErrorCode
from gateway.errors import ApiError, error_body
from gateway.images import inspect_header
from gateway.keys import Admission
from gateway.tracking import Tracker

router = APIRouter()
MAX_FRAME_BYTES = 4 * 1024 * 1024


class LatestFrame:
    """One slot: a new frame replaces one not yet taken (and counts as a dropped frame). A text message takes
    a frame's place as None, to be answered with an error in its turn."""

    def __init__(self) -> None:
        self.frame: tuple[int, bytes | None] | None = None
        self.dropped = 0
        self.ready = asyncio.Event()

    def put(self, number: int, data: bytes | None) -> None:
        if self.frame is not None:
            self.dropped += 1
        self.frame = (number, data)
        self.ready.set()

    async def take(self) -> tuple[int, bytes | None]:
        await self.ready.wait()
        self.ready.clear()
        frame, self.frame = self.frame, None
        assert frame is not None
        return frame


@router.websocket("/v1/stream")
async def stream(ws: WebSocket, features: str = "emotion,age,gender", max_faces: int = 10) -> None:
    settings = ws.app.state.settings
    await ws.accept()
    try:
        wanted = parse_features(features)
        admission = (
            await admit(ws, secret_of(ws) or ws.query_params.get("key"), "read", None) if settings.auth else None
        )
    except ApiError as exc:
        await ws.send_json(error_body(exc.code, exc.message))
        await ws.close(code=1008 if exc.status in (401, 403) else 1003)
        return
    keeper = asyncio.create_task(hold(ws, admission)) if admission else None
    try:
        await serve(ws, admission, wanted, DetectOptions(max_faces=max(1, min(max_faces, settings.max_faces))))
    finally:  # whatever ended the stream, its slot is given back
        if keeper and admission:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            await release(ws, admission)


async def serve(ws: WebSocket, admission: Admission | None, features: set[str], options: DetectOptions) -> None:
    """Answer frames until the client goes."""
    slot, tracker = LatestFrame(), Tracker()

    async def receive() -> None:
        number = 0
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            number += 1
            slot.put(number, message.get("bytes"))

    receiver = asyncio.create_task(receive())
    try:
        while True:
            take = asyncio.create_task(slot.take())
            await asyncio.wait({take, receiver}, return_when=asyncio.FIRST_COMPLETED)
            if not take.done():
                take.cancel()
                break
            number, data = take.result()
            body = await answer(ws, admission, data, options, features, tracker)
            await ws.send_json({"frame": number, "dropped": slot.dropped, **body})
        receiver.result()  # a receiver that failed fails the stream (and is logged), never silently
    except WebSocketDisconnect:
        pass
    finally:
        receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
            await receiver


async def answer(
    ws: WebSocket, admission: Admission | None, data: bytes | None, options: DetectOptions, features: set[str],
    tracker: Tracker,
) -> dict[str, Any]:  # fmt: skip
    """A frame's faces, or its error: one bad frame is answered, the stream goes on."""
    settings = ws.app.state.settings
    try:
        if data is None:
            raise ApiError(ErrorCode.INVALID_FRAME, "frames are binary messages holding a JPEG or PNG image, not text")
        if len(data) > MAX_FRAME_BYTES:
            raise ApiError(ErrorCode.IMAGE_TOO_LARGE, f"a frame is at most {MAX_FRAME_BYTES} bytes")
        inspect_header(data, settings.max_pixels)
        if admission and admission.key:
            await spend_token(ws, admission.key)
        body = await analyze(ws.app.state.services, settings, data, options, features)
    except ApiError as exc:
        return error_body(exc.code, exc.message)
    for face, track_id in zip(body["faces"], tracker.update(body["faces"]), strict=True):
        face["track_id"] = track_id
    return body
