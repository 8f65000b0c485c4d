"""WS /v1/stream: frames in, tracked and analysed faces out; stable track ids; frames dropped, not queued; with
keys on, frames counted against the key's rate and its concurrency slot given back however the stream ends."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import redis
from websocket import WebSocket, create_connection

from tests import images
from tests.gateway.api_keys import new_key, stream_url

# the CLI, websockets and raw HTTP need a gateway process listening on a port
pytestmark = pytest.mark.process


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


def test_a_text_frame_is_answered_with_a_code_and_the_stream_goes_on(ws: WebSocket) -> None:
    ws.send("hello")
    text = json.loads(ws.recv())
    assert text["frame"] == 1 and text["error"]["code"] == "invalid_frame"
    ws.send_binary(frames(1)[0])
    good = json.loads(ws.recv())
    assert good["frame"] == 2 and len(good["faces"]) == 1


def wait_until_no_slot_is_held(redis_url: str, key_id: str, timeout_s: float = 30) -> None:
    """The gateway gives a slot back once the stream's socket is closed: a moment after the client's close."""
    slots, deadline = redis.Redis.from_url(redis_url), time.monotonic() + timeout_s
    while slots.zcard(f"fp:auth:slots:{key_id}") and time.monotonic() < deadline:
        time.sleep(0.05)


def test_a_stream_gives_its_slot_back_however_it_ends(secure_api: httpx.Client, redis_url: str) -> None:
    key = new_key(redis_url, scopes="read", concurrency="1")
    url = stream_url(secure_api, f"key={key['api_key']}&features=age")
    first = create_connection(url, timeout=60)
    first.send("not a frame")  # once a KeyError that left the slot taken for good
    assert json.loads(first.recv())["error"]["code"] == "invalid_frame"
    # While it is open the key's one slot is taken: another stream is refused, and the refusal does not push
    # back the slot's expiry (every refused retry used to).
    slots = redis.Redis.from_url(redis_url)
    expiry = slots.pttl(f"fp:auth:slots:{key['key_id']}")
    refused = create_connection(url, timeout=60)
    try:
        assert json.loads(refused.recv())["error"]["code"] == "too_many_concurrent"
    finally:
        refused.close()
    assert 0 < slots.pttl(f"fp:auth:slots:{key['key_id']}") <= expiry
    first.close()
    wait_until_no_slot_is_held(redis_url, key["key_id"])
    again = create_connection(url, timeout=60)
    try:
        again.send_binary(frames(1)[0])
        assert len(json.loads(again.recv())["faces"]) == 1
    finally:
        again.close()


def test_frames_over_the_key_rate_are_refused_and_the_stream_goes_on(secure_api: httpx.Client, redis_url: str) -> None:
    key = new_key(redis_url, scopes="read", rate="0.01", burst="3")  # opening takes a token, two frames the rest
    stream = create_connection(stream_url(secure_api, f"key={key['api_key']}&features=age"), timeout=60)
    answers = []
    try:
        for frame in frames(4):
            stream.send_binary(frame)
            answers.append(json.loads(stream.recv()))
    finally:
        stream.close()
    assert [a["frame"] for a in answers] == [1, 2, 3, 4]
    assert [len(a["faces"]) for a in answers[:2]] == [1, 1]
    assert [a["error"]["code"] for a in answers[2:]] == ["rate_limited", "rate_limited"]
