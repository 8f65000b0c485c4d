"""Faults on a stack of our own: a service killed under load, the embedder gone, Redis restarted mid-enrolment.
The gateway keeps answering what it can, says what it cannot, recovers by itself, and loses no enrolled face."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from deploy.local.stack import Stack, available_services, free_port
from tests import images

pytestmark = pytest.mark.slow
ONE_FACE = images.encode(images.astronaut(), quality=90)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    services = [s for s in available_services() if s != "generator"]
    stack = Stack(
        ports={name: free_port() for name in ["gateway", "redis", *services]},
        log_dir=tmp_path_factory.mktemp("fault-logs"),
        data_dir=tmp_path_factory.mktemp("fault-redis"),
        services=services,
    )
    # Short deadlines and a quick breaker, so a dead service costs the test seconds, not minutes.
    stack.extra_env = {
        "FACEPLANE_GATEWAY_ANALYSIS_DEADLINE_S": "3",
        "FACEPLANE_GATEWAY_BREAKER_FAILURES": "3",
        "FACEPLANE_GATEWAY_BREAKER_COOLDOWN_S": "1",
        "FACEPLANE_EMBEDDER_PROBE_INTERVAL_S": "0.5",
    }
    stack.start()
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://127.0.0.1:{stack.ports['gateway']}", timeout=60) as c:
        yield c


def kill(stack: Stack, name: str) -> None:
    proc = stack.procs.pop(name)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def eventually(check: Callable[[], bool], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "did not happen in time"
        time.sleep(0.2)


def analyze(client: httpx.Client) -> httpx.Response:
    return client.post("/v1/analyze", files={"image": ("a.jpg", ONE_FACE, "image/jpeg")})


def test_a_killed_analysis_service_degrades_analyze_and_recovers_by_itself(stack: Stack, client: httpx.Client) -> None:
    answers: list[httpx.Response] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            answers.append(analyze(client))

    workers = [threading.Thread(target=load) for _ in range(4)]
    for w in workers:
        w.start()
    try:
        eventually(lambda: len(answers) >= 4)
        kill(stack, "emotion")
        eventually(lambda: "emotion" in (analyze(client).json()["faces"][0].get("errors") or {}))
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "degraded"
        assert ready.json()["services"]["emotion"] == "UNREACHABLE"
        metrics = client.get("/metrics").text
        eventually(lambda: 'faceplane_circuit_open{service="emotion"} 1.0' in client.get("/metrics").text)
        face = analyze(client).json()["faces"][0]
        assert "circuit open" in face["errors"]["emotion"] or "unavailable" in face["errors"]["emotion"]
        assert "age" in face and "mask" in face  # the other services still answer

        stack.start_service("emotion")  # same port: the gateway finds it again with nothing done
        stack.wait_service("emotion")
        eventually(lambda: "emotion" in analyze(client).json()["faces"][0], timeout_s=30)
        eventually(lambda: client.get("/readyz").json()["status"] == "ready")
    finally:
        stop.set()
        for w in workers:
            w.join()
    assert all(r.status_code == 200 for r in answers), {r.status_code for r in answers}
    assert metrics  # read while the service was down


def test_without_the_embedder_only_recognition_fails(stack: Stack, client: httpx.Client) -> None:
    kill(stack, "embedder")
    try:
        r = client.post("/v1/collections/faults/identify", files={"image": ("a.jpg", ONE_FACE, "image/jpeg")})
        assert r.status_code == 503 and r.json()["error"]["code"] == "embedder_unavailable", r.text
        r = client.post("/v1/verify", files={"image1": ("a.jpg", ONE_FACE, "image/jpeg"),
                                             "image2": ("b.jpg", ONE_FACE, "image/jpeg")})  # fmt: skip
        assert r.status_code == 503 and r.json()["error"]["code"] == "embedder_unavailable", r.text
        assert client.post("/v1/detect", files={"image": ("a.jpg", ONE_FACE, "image/jpeg")}).status_code == 200
        assert analyze(client).status_code == 200
    finally:
        stack.start_service("embedder")
        stack.wait_service("embedder")
    eventually(lambda: client.get("/readyz").json()["status"] == "ready")


def enrol(client: httpx.Client, subject: str) -> httpx.Response:
    path = f"/v1/collections/faults/subjects/{subject}/faces"
    return client.post(path, files={"image": ("a.jpg", ONE_FACE, "image/jpeg")})


def test_a_redis_restart_loses_no_enrolled_face_and_half_writes_nothing(stack: Stack, client: httpx.Client) -> None:
    subjects = [f"person-{i}" for i in range(6)]
    for s in subjects:
        assert client.post("/v1/collections/faults/subjects", json={"subject_id": s}).status_code == 201
    before = {s: enrol(client, s).json()["face_id"] for s in subjects[:3]}

    outcomes: list[tuple[str, httpx.Response]] = []

    def enrol_during_restart() -> None:
        for _ in range(10):
            for s in subjects[3:]:
                outcomes.append((s, enrol(client, s)))

    writer = threading.Thread(target=enrol_during_restart)
    writer.start()
    redis = stack.procs.pop("redis")
    redis.send_signal(signal.SIGTERM)  # a clean shutdown: Redis flushes the AOF
    redis.wait()
    stack.start_redis()  # same port, same data directory
    writer.join()

    eventually(lambda: client.get("/readyz").json()["services"].get("embedder/gallery") == "SERVING")
    for s, face_id in before.items():
        assert face_id in client.get(f"/v1/collections/faults/subjects/{s}").json()["face_ids"], s
    accepted = [(s, r.json()["face_id"]) for s, r in outcomes if r.status_code == 201]
    refused = [r for _, r in outcomes if r.status_code != 201]
    assert all(r.status_code == 503 and r.json()["error"]["code"] == "gallery_unavailable" for r in refused), [
        r.text for r in refused
    ]
    stored = {s: set(client.get(f"/v1/collections/faults/subjects/{s}").json()["face_ids"]) for s in subjects[3:]}
    for s, face_id in accepted:
        assert face_id in stored[s], f"{s}: enrolment {face_id} answered 201 but is gone"
    # nothing half-written: every stored face id answers identification with its subject
    total = sum(len(v) for v in stored.values())
    assert total == len(accepted), (total, len(accepted))
    r = client.post("/v1/collections/faults/identify", files={"image": ("a.jpg", ONE_FACE, "image/jpeg")})
    assert r.status_code == 200 and r.json()["faces"][0]["matches"]
