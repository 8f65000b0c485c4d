"""WS /v1/stream: live video. The client sends JPEG (or PNG) frames as binary messages; each answered frame
gets `{"frame", "dropped", "faces": [… "track_id" …]}`. While a frame is being analysed only the newest that
arrives meanwhile is kept: a client that sends faster than it is served loses frames, never gets behind."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from gateway.analysis import DetectOptions, analyze, parse_features
from gateway.auth import ANONYMOUS, admit, release, secret_of
from gateway.clients import Services
from gateway.errors import ApiError, error_body
from gateway.images import inspect_header
from gateway.settings import Settings
from gateway.tracking import Tracker

router = APIRouter()
MAX_FRAME_BYTES = 4 * 1024 * 1024


class LatestFrame:
    """One slot: a new frame replaces one not yet taken (and counts as a dropped frame)."""

    def __init__(self) -> None:
        self.frame: tuple[int, bytes] | None = None
        self.dropped = 0
        self.ready = asyncio.Event()

    def put(self, number: int, data: bytes) -> None:
        if self.frame is not None:
            self.dropped += 1
        self.frame = (number, data)
        self.ready.set()

    async def take(self) -> tuple[int, bytes]:
        await self.ready.wait()
        self.ready.clear()
        frame, self.frame = self.frame, None
        assert frame is not None
        return frame


@router.websocket("/v1/stream")
async def stream(ws: WebSocket, features: str = "emotion,age,gender", max_faces: int = 10) -> None:
    settings, services = ws.app.state.settings, ws.app.state.services
    key = ANONYMOUS
    await ws.accept()
    try:
        wanted = parse_features(features)
        if settings.auth:
            key = await admit(ws, secret_of(ws) or ws.query_params.get("key"), "read", None)
    except ApiError as exc:
        await ws.send_json(error_body(exc.code, exc.message))
        await ws.close(code=1008 if exc.status in (401, 403) else 1003)
        return
    slot, tracker = LatestFrame(), Tracker()
    options = DetectOptions(max_faces=max(1, min(max_faces, settings.max_faces)))

    async def receive() -> None:
        number = 0
        while True:
            data = await ws.receive_bytes()
            number += 1
            slot.put(number, data)

    receiver = asyncio.create_task(receive())
    try:
        while not receiver.done():
            take = asyncio.create_task(slot.take())
            await asyncio.wait({take, receiver}, return_when=asyncio.FIRST_COMPLETED)
            if not take.done():
                take.cancel()
                break
            number, data = take.result()
            await ws.send_json(await answer(services, settings, data, options, wanted, tracker, number, slot.dropped))
    except WebSocketDisconnect:
        pass
    finally:
        receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
            await receiver
        if key is not ANONYMOUS:
            await release(ws, key)


async def answer(
    services: Services, settings: Settings, data: bytes, options: DetectOptions, features: set[str],
    tracker: Tracker, number: int, dropped: int,
) -> dict[str, Any]:  # fmt: skip
    try:
        if len(data) > MAX_FRAME_BYTES:
            raise ApiError("image_too_large", f"a frame is at most {MAX_FRAME_BYTES} bytes")
        inspect_header(data, settings.max_pixels)
        body = await analyze(services, settings, data, options, features)
    except ApiError as exc:  # one bad frame is answered, the stream goes on
        return {"frame": number, "dropped": dropped, **error_body(exc.code, exc.message)}
    for face, track_id in zip(body["faces"], tracker.update(body["faces"]), strict=True):
        face["track_id"] = track_id
    return {"frame": number, "dropped": dropped, **body}
