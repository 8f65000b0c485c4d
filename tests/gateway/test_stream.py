"""WS /v1/stream: frames in, tracked and analysed faces out; stable track ids; frames dropped, not queued."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from websocket import WebSocket, create_connection

from tests import images


@pytest.fixture
def ws(api: httpx.Client) -> Iterator[WebSocket]:
    url = str(api.base_url).replace("http://", "ws://").rstrip("/") + "/v1/stream?features=emotion,age"
    connection = create_connection(url, timeout=60)
    yield connection
    connection.close()


def frames(count: int) -> list[bytes]:
    """The astronaut, panning a few pixels per frame, as JPEG frames of a video."""
    photo = images.astronaut()
    return [images.encode(np.ascontiguousarray(np.roll(photo, 4 * i, axis=1)), quality=85) for i in range(count)]


def test_a_face_keeps_its_track_id_across_frames(ws: WebSocket) -> None:
    answers = []
    for frame in frames(5):
        ws.send_binary(frame)
        answers.append(json.loads(ws.recv()))
    assert [a["frame"] for a in answers] == [1, 2, 3, 4, 5]
    assert all(len(a["faces"]) == 1 for a in answers)
    assert len({a["faces"][0]["track_id"] for a in answers}) == 1
    assert all("emotion" in a["faces"][0] and "age" in a["faces"][0] for a in answers)
    # The box follows the face, 4 px a frame. Not step by step: MTCNN's boxes jitter by 1–2 px, more at times.
    xs = [a["faces"][0]["box"]["x"] for a in answers]
    slope = np.polyfit(np.arange(len(xs)), xs, 1)[0]
    assert 2.5 < slope < 5.5, xs


def test_a_client_sending_too_fast_loses_frames_instead_of_queueing(ws: WebSocket) -> None:
    sent = frames(3) * 8  # 24 frames at once
    for frame in sent:
        ws.send_binary(frame)
    answers = []
    while not answers or answers[-1]["frame"] < len(sent):
        answers.append(json.loads(ws.recv()))
    numbers = [a["frame"] for a in answers]
    assert numbers == sorted(numbers) and numbers[-1] == len(sent)
    assert len(answers) < len(sent) and answers[-1]["dropped"] == len(sent) - len(answers)


def test_a_bad_frame_is_answered_and_the_stream_goes_on(ws: WebSocket) -> None:
    ws.send_binary(b"\xff\xd8\xff not a frame")
    bad = json.loads(ws.recv())
    assert bad["frame"] == 1 and bad["error"]["code"] in {"corrupt_image", "unsupported_image", "invalid_image"}
    ws.send_binary(frames(1)[0])
    good = json.loads(ws.recv())
    assert good["frame"] == 2 and len(good["faces"]) == 1


def test_unknown_features_close_the_stream_with_a_reason(api: httpx.Client) -> None:
    url = str(api.base_url).replace("http://", "ws://").rstrip("/") + "/v1/stream?features=telepathy"
    connection = create_connection(url, timeout=30)
    try:
        assert json.loads(connection.recv())["error"]["code"] == "invalid_features"
    finally:
        connection.close()
