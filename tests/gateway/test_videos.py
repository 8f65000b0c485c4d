"""Video jobs end to end: POST /v1/videos, the worker (gateway/video_worker.py) over the real services and Redis,
GET /v1/videos/{job_id}, DELETE. Videos are made here with cv2.VideoWriter from tests/images.py's photos.

Each test's gateway (create_app in this process) and workers use a Redis database of their own on the session's
Redis, so that their job streams are apart; the worker runs on a thread of its own, or, for the kill test, as
`python -m gateway.video_worker` processes.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from deploy.local.stack import Stack, free_port, spawn, stop
from faceplane_client import FaceplaneClient
from faceplane_client.cli import parser, run
from gateway.app import create_app
from gateway.clients import Services
from gateway.settings import Settings
from gateway.tracking import iou
from gateway.video_worker import VideoWorker, client_of
from tests import images
from tests.gateway.api_keys import bearer, new_key
from tests.gateway.test_collections_api import collection_with_eileen
from tests.inprocess import gateway_client

FPS = 10


def video(frames: list[np.ndarray], path: Path, fourcc: str = "mp4v", fps: int = FPS) -> bytes:
    """RGB frames as a video file's bytes."""
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    assert writer.isOpened()
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path.read_bytes()


def astronaut_frames(n: int) -> list[np.ndarray]:
    """The astronaut drifting right, a pixel a frame."""
    photo = images.astronaut()
    return [np.roll(photo, i, axis=1) for i in range(n)]


@pytest.fixture(scope="module")
def backends(request: pytest.FixtureRequest, fast: bool) -> tuple[dict[str, str], str]:
    """(service → host:port, the Redis URL without its database) of the session's services, either tier."""
    if fast:
        urls, redis_url = request.getfixturevalue("inprocess")
        return urls, redis_url.rsplit("/", 1)[0]
    stack: Stack = request.getfixturevalue("stack")
    return {s: f"127.0.0.1:{stack.ports[s]}" for s in stack.services}, stack.redis_url.rsplit("/", 1)[0]


def settings_of(backends: tuple[dict[str, str], str], db: int, **overrides: Any) -> dict[str, Any]:
    urls, redis_base = backends
    return {"services": {"detector": "", **urls}, "redis_url": f"{redis_base}/{db}", **overrides}


class WorkerThread:
    """A VideoWorker on an event loop of its own, in a thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._main, name="video-worker", daemon=True)

    def _main(self) -> None:
        self.loop.run_until_complete(self._run())

    async def _run(self) -> None:
        services, client = Services(self.settings), client_of(self.settings)
        self.worker = VideoWorker(self.settings, services, client)
        self.ready.set()
        try:
            await self.worker.run()
        finally:
            await services.close()
            await client.aclose()

    def __enter__(self) -> WorkerThread:
        self.thread.start()
        assert self.ready.wait(30)
        return self

    def __exit__(self, *_: object) -> None:
        self.loop.call_soon_threadsafe(self.worker.stopping.set)
        self.thread.join(timeout=60)


@contextmanager
def gateway(backends: tuple[dict[str, str], str], db: int, **overrides: Any) -> Iterator[httpx.Client]:
    settings = settings_of(backends, db, **overrides)
    with gateway_client(settings.pop("services"), settings.pop("redis_url"), **settings) as client:
        yield client


@pytest.fixture(scope="module")
def api_with_worker(backends: tuple[dict[str, str], str]) -> Iterator[httpx.Client]:
    with gateway(backends, 3) as client, WorkerThread(Settings(**settings_of(backends, 3))):
        yield client


def submit(api: httpx.Client, data: bytes, name: str = "clip.mp4", **params: object) -> httpx.Response:
    return api.post("/v1/videos", files={"video": (name, data, "video/mp4")}, params=params)


def wait_done(api: httpx.Client, job_id: str, timeout_s: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = api.get(f"/v1/videos/{job_id}").json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.2)
    pytest.fail(f"job {job_id} not finished after {timeout_s}s: {job}")


def test_a_face_becomes_one_track_with_its_identity_and_summary(api_with_worker: httpx.Client, tmp_path: Path) -> None:
    api = api_with_worker
    c = collection_with_eileen(api)
    data = video(astronaut_frames(20), tmp_path / "a.mp4")  # 2 s at 10 fps
    accepted = submit(api, data, collection=c, features="emotion,age", sample_fps=5)
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["status"] == "queued"
    job = wait_done(api, accepted.json()["job_id"])
    assert job["status"] == "done", job
    assert job["progress"] == 1
    result = job["result"]
    assert result["fps"] == FPS and result["duration_s"] == 2.0
    assert result["frames_analyzed"] == 10  # every other frame
    (track,) = result["tracks"]
    assert len(track["frames"]) == 10
    assert track["start_s"] == 0.0 and track["end_s"] == 1.8
    x1, y1, x2, y2 = images.ASTRONAUT_FACE
    for frame in track["frames"]:
        shift = round(frame["t"] * FPS)
        expected = {"x": x1 + shift, "y": y1, "width": x2 - x1, "height": y2 - y1}
        assert iou(frame["box"], expected) > 0.5, frame
    assert track["identity"]["subject_id"] == "eileen" and track["identity"]["similarity"] > 0.916
    assert track["summary"]["emotion"]["label"] and 0 < track["summary"]["emotion"]["share"] <= 1
    assert 10 < track["summary"]["age"]["value"] < 80


def test_a_video_without_faces_has_no_tracks(api_with_worker: httpx.Client, tmp_path: Path) -> None:
    data = video([images.no_face()] * 10, tmp_path / "coffee.avi", "MJPG")
    accepted = submit(api_with_worker, data, "coffee.avi")
    assert accepted.status_code == 202, accepted.text
    job = wait_done(api_with_worker, accepted.json()["job_id"])
    assert job["status"] == "done", job
    assert job["result"]["tracks"] == [] and job["result"]["frames_analyzed"] == 5
    assert "error" not in job


def test_bad_uploads_are_refused_with_their_codes(backends: tuple[dict[str, str], str], tmp_path: Path) -> None:
    face = video(astronaut_frames(20), tmp_path / "a.mp4")
    avi = video(astronaut_frames(10), tmp_path / "a.avi", "MJPG")  # 1 s
    with gateway(backends, 3, video_max_bytes=len(face) - 1) as api:
        cases = {
            "unsupported_video": (415, images.encode(images.astronaut())),
            "corrupt_video": (422, face[: len(face) // 2]),  # mp4v writes its index last: truncated, no index
            "video_too_large": (413, face),
        }
        for code, (status, data) in cases.items():
            answer = submit(api, data)
            assert (answer.status_code, answer.json()["error"]["code"]) == (status, code), answer.text
    with gateway(backends, 3, video_max_duration_s=1.5) as api:
        truncated_avi = submit(api, avi[: len(avi) * 2 // 3], "a.avi")  # its header still names 10 frames
        assert (truncated_avi.status_code, truncated_avi.json()["error"]["code"]) == (422, "corrupt_video")
        too_long = submit(api, face)
        assert (too_long.status_code, too_long.json()["error"]["code"]) == (413, "video_too_long")
        webm = video([images.no_face()] * 5, tmp_path / "coffee.webm", "VP80")
        assert submit(api, webm, "coffee.webm").status_code == 202  # WebM (VP8) is taken too


def refusal(answer: httpx.Response) -> tuple[int, str, str]:
    """(status, code, message) of an error answer, which must be JSON `{"error": {"code", "message"}}` alone."""
    assert answer.headers["content-type"] == "application/json", answer.text
    body = answer.json()
    assert list(body) == ["error"] and sorted(body["error"]) == ["code", "message"], body
    return answer.status_code, body["error"]["code"], body["error"]["message"]


def test_bad_requests_are_refused_with_a_4xx_naming_the_fault(api_with_worker: httpx.Client, tmp_path: Path) -> None:
    api, face = api_with_worker, video(astronaut_frames(5), tmp_path / "a.mp4")
    cases: dict[str, tuple[httpx.Response, int, str, str]] = {
        "sample_fps not a number": (submit(api, face, sample_fps="fast"), 422, "invalid_request", "sample_fps"),
        "sample_fps 0": (submit(api, face, sample_fps=0), 422, "invalid_request", "greater than 0"),
        "sample_fps < 0": (submit(api, face, sample_fps=-1), 422, "invalid_request", "greater than 0"),
        "sample_fps over the cap": (submit(api, face, sample_fps=30.5), 422, "invalid_request", "equal to 30"),
        "sample_fps nan": (submit(api, face, sample_fps="nan"), 422, "invalid_request", "finite number"),
        "sample_fps inf": (submit(api, face, sample_fps="inf"), 422, "invalid_request", "finite number"),
        "unknown feature": (submit(api, face, features="age,nope"), 422, "invalid_features", "comma list of"),
        "empty features": (submit(api, face, features=""), 422, "invalid_features", "comma list of"),
        "features with a gap": (submit(api, face, features="age,"), 422, "invalid_features", "comma list of"),
        "collection not a name": (submit(api, face, collection="a b"), 422, "invalid_request", "query.collection"),
        "collection too long": (submit(api, face, collection="c" * 65), 422, "invalid_request", "query.collection"),
        "no video field": (
            api.post("/v1/videos", files={"image": ("a.mp4", face, "video/mp4")}),
            422, "missing_image", "file field named 'video'",
        ),
        "video not a file": (
            api.post("/v1/videos", data={"video": "a.mp4"}, files={"other": ("x", b"x")}),
            422, "missing_image", "file field named 'video'",
        ),
        "empty file": (submit(api, b""), 400, "empty_image", "the video is empty"),
        "two files": (
            api.post("/v1/videos", files=[("video", ("a.mp4", face, "video/mp4"))] * 2),
            400, "invalid_multipart", "Too many files",
        ),
        "raw video body": (
            api.post("/v1/videos", content=face, headers={"content-type": "video/mp4"}),
            415, "unsupported_media_type", "multipart file field 'video'",
        ),
        "JSON body": (api.post("/v1/videos", json={"video": "a"}), 415, "unsupported_media_type", "multipart"),
    }  # fmt: skip
    for job_id in ("xyz", "0" * 23, "0" * 25, "A" * 24, "g" * 24):
        for method in ("GET", "DELETE"):
            cases[f"{method} {job_id}"] = (api.request(method, f"/v1/videos/{job_id}"), 422, "invalid_request",
                                           "path.job_id")  # fmt: skip
    for method in ("GET", "DELETE"):
        cases[f"{method} unknown"] = (api.request(method, "/v1/videos/" + "ab" * 12), 404, "not_found", "no video job")
    for case, (answer, status, code, words) in cases.items():
        got = refusal(answer)
        assert got[:2] == (status, code) and words in got[2], (case, got)


def test_an_unknown_collection_is_refused_at_upload(api_with_worker: httpx.Client, tmp_path: Path) -> None:
    data = video(astronaut_frames(5), tmp_path / "a.mp4")
    unknown = f"none-{uuid.uuid4().hex[:8]}"
    assert refusal(submit(api_with_worker, data, collection=unknown)) == (
        404,
        "not_found",
        f"no collection {unknown!r}",
    )
    assert submit(api_with_worker, data, collection=collection_with_eileen(api_with_worker)).status_code == 202


def test_a_key_may_name_only_its_own_collections(backends: tuple[dict[str, str], str], tmp_path: Path) -> None:
    data = video(astronaut_frames(5), tmp_path / "a.mp4")
    settings = Settings(**settings_of(backends, 7), auth=True)  # gateway_client turns auth off
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as api:
        api.headers.update(bearer(new_key(settings.redis_url, scopes="read", collections="video-key-only")))
        assert refusal(submit(api, data, collection="guests"))[:2] == (403, "forbidden")  # before whether it exists
        assert refusal(submit(api, data, collection="video-key-only"))[:2] == (404, "not_found")


def test_unknown_jobs_are_404_and_delete_forgets(backends: tuple[dict[str, str], str], tmp_path: Path) -> None:
    with gateway(backends, 6) as api:  # no worker: the job stays queued
        missing = api.get("/v1/videos/" + "0" * 24)
        assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")
        assert api.delete("/v1/videos/" + "0" * 24).status_code == 404
        job_id = submit(api, video(astronaut_frames(5), tmp_path / "a.mp4")).json()["job_id"]
        assert api.get(f"/v1/videos/{job_id}").json() == {
            "job_id": job_id,
            "status": "queued",
            "progress": 0,
            "attempts": 0,
        }
        assert api.delete(f"/v1/videos/{job_id}").status_code == 204
        assert api.get(f"/v1/videos/{job_id}").status_code == 404
        with WorkerThread(Settings(**settings_of(backends, 6))) as worker:  # it drops the deleted job's entry
            deadline = time.monotonic() + 30
            store = worker.worker.store
            pending = asyncio.run_coroutine_threadsafe(store.redis.xlen("fp:video:jobs"), worker.loop)
            while pending.result(10) and time.monotonic() < deadline:
                time.sleep(0.2)
                pending = asyncio.run_coroutine_threadsafe(store.redis.xlen("fp:video:jobs"), worker.loop)
            assert pending.result(10) == 0


def test_a_job_that_always_fails_ends_failed_after_its_attempts(
    backends: tuple[dict[str, str], str], tmp_path: Path
) -> None:
    # The worker's detector is an address nothing listens at: every attempt fails detector_unavailable.
    dead = {"services": {"detector": f"127.0.0.1:{free_port()}"}}
    worker = Settings(**{**settings_of(backends, 5), **dead}, video_claim_idle_s=0.2, video_max_attempts=2)
    with gateway(backends, 5) as api, WorkerThread(worker):
        job_id = submit(api, video(astronaut_frames(5), tmp_path / "a.mp4")).json()["job_id"]
        job = wait_done(api, job_id, 60)
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "detector_unavailable"
    assert job["error"]["message"].startswith("failed 2 attempts")
    assert "result" not in job


@pytest.mark.process
def test_a_killed_worker_s_job_is_finished_by_another(backends: tuple[dict[str, str], str], tmp_path: Path) -> None:
    urls, redis_base = backends
    env = {f"FACEPLANE_GATEWAY_SERVICES__{s.upper()}": url for s, url in urls.items()}
    env |= {"FACEPLANE_GATEWAY_REDIS_URL": f"{redis_base}/4", "FACEPLANE_GATEWAY_VIDEO_CLAIM_IDLE_S": "2"}

    def worker(name: str) -> Any:
        command = [sys.executable, "-m", "gateway.video_worker"]
        return spawn(command, {**env, "FACEPLANE_GATEWAY_VIDEO_WORKER_NAME": name}, tmp_path / f"{name}.log")

    data = video(astronaut_frames(80), tmp_path / "long.mp4")  # 8 s: 40 frames at 5 fps
    with gateway(backends, 4) as api:
        job_id = submit(api, data).json()["job_id"]
        first = worker("first")
        try:
            deadline = time.monotonic() + 120
            while (job := api.get(f"/v1/videos/{job_id}").json())["progress"] < 0.1:
                assert time.monotonic() < deadline and first.poll() is None, (tmp_path / "first.log").read_text()
                time.sleep(0.05)
            assert job["status"] == "running" and job["progress"] < 1
            first.send_signal(signal.SIGKILL)  # mid-job: its entry stays pending, unacknowledged
            first.wait()
        finally:
            stop(first)
        second = worker("second")
        try:
            job = wait_done(api, job_id)
        finally:
            stop(second)
    assert job["status"] == "done", job
    assert job["attempts"] == 2
    (track,) = job["result"]["tracks"]
    assert job["result"]["frames_analyzed"] == 40 and len(track["frames"]) == 40


def test_the_cli_waits_for_the_job_with_a_progress_bar(
    api_with_worker: httpx.Client, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(video(astronaut_frames(10), clip))
    client = FaceplaneClient()
    client._http = api_with_worker  # the in-process gateway (TestClient is an httpx.Client)
    job, text = run(parser().parse_args(["video", "analyze", str(clip), "--features", "age"]), client)
    assert job["status"] == "done" and len(job["result"]["tracks"]) == 1
    assert job["result"]["tracks"][0]["identity"] is None  # no collection: null, not left out
    assert text.splitlines()[0] == "5 frames analysed of 1.0 s, 1 tracks"
    assert "100% done" in capsys.readouterr().err
