"""python -m gateway.video_worker: the video jobs' worker, a process of its own, scaled apart from the gateway.

It reads jobs from the Redis stream as one consumer of the workers' group (XREADGROUP), decodes each video with
OpenCV at the job's `sample_fps`, sends every sampled frame (as JPEG) through the same detect-once + fan-out path
as /v1/analyze (gateway/analysis.py), gives the faces stable ids with the /v1/stream tracker, identifies each
track against the job's collection (its largest, most confident face), then writes the result and acknowledges
(XACK). A job left unacknowledged for `video_claim_idle_s` — its worker was killed — is taken over by another
(XAUTOCLAIM); each taking counts as an attempt, and after `video_max_attempts` the job ends `failed`. Streams and
a consumer group rather than a job library: it is the Redis we already run, no new dependency, and XAUTOCLAIM
gives the redelivery.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import signal
import socket
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean
from typing import Any

import cv2
import numpy as np
import redis.asyncio as redis

from gateway.analysis import DetectOptions, analyze
from gateway.clients import Services
from gateway.errors import ApiError
from gateway.recognition import Gallery
from gateway.settings import Settings
from gateway.tracking import Tracker, iou
from gateway.videos import GROUP, STREAM, JobStore, video_file
from services.runtime.logs import configure_logging

log = logging.getLogger("faceplane.video_worker")
JPEG_QUALITY = 90
_BLOCK_MS = 1000  # one XREADGROUP waits this long, so a stop request is seen within a second
# Touched by the loop at least once a second (between frames, and between reads of the stream); the chart's probes
# run `python -m gateway.video_worker --alive`, which fails once it is older than ALIVE_S.
HEARTBEAT = Path(tempfile.gettempdir()) / "faceplane-video-worker.alive"
ALIVE_S = 120


class Cancelled(Exception):
    """The job was deleted while it ran."""


@dataclass
class TrackRecord:
    track_id: int
    frames: list[dict[str, Any]] = field(default_factory=list)
    faces: list[dict[str, Any]] = field(default_factory=list)
    best: tuple[float, bytes, dict[str, float]] | None = None  # (size × confidence, the frame's JPEG, the box)

    def add(self, t: float, face: dict[str, Any], jpeg: bytes) -> None:
        box = face["box"]
        self.frames.append({"t": round(t, 3), "box": box, "confidence": face["confidence"]})
        self.faces.append(face)
        score = box["width"] * box["height"] * face["confidence"]
        if self.best is None or score > self.best[0]:
            self.best = (score, jpeg, box)


def summarise(faces: list[dict[str, Any]], features: list[str]) -> dict[str, Any]:
    """Each feature over a track's faces: a label's majority and its share, or the mean of each number."""
    out: dict[str, Any] = {}
    for name in features:
        values = [f[name] for f in faces if isinstance(f.get(name), dict)]
        if not values:
            continue
        if all("label" in v for v in values):
            label, n = Counter(v["label"] for v in values).most_common(1)[0]
            out[name] = {"label": label, "share": round(n / len(values), 4)}
        else:
            keys = [k for k, v in values[0].items() if isinstance(v, int | float) and not isinstance(v, bool)]
            out[name] = {k: round(mean(float(v[k]) for v in values), 4) for k in keys}
    return out


def sampled_frames(path: str, sample_fps: float) -> tuple[float, Any]:
    """The video's frame rate and an iterator over (time, BGR frame) at about `sample_fps`."""
    capture = cv2.VideoCapture(path)
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0

    def frames() -> Any:
        index, taken = 0, -1
        try:
            while True:
                ok, frame = capture.read()
                if not ok:
                    return
                slot = int(index * sample_fps / fps)
                if slot > taken:  # the first frame of each 1/sample_fps slot
                    taken = slot
                    yield index / fps, frame
                index += 1
        finally:
            capture.release()

    return fps, frames()


class VideoWorker:
    def __init__(self, settings: Settings, services: Services, client: redis.Redis) -> None:
        self.settings = settings
        self.services = services
        self.store = JobStore(client, settings.video_result_ttl_s)
        self.name = settings.video_worker_name or f"{socket.gethostname()}-{os.getpid()}"
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        await self.store.ensure_group()
        log.info("video worker started", extra={"consumer": self.name})
        while not self.stopping.is_set():
            HEARTBEAT.touch()
            try:
                entry = await self.next_entry()
                if entry is not None:
                    await self.handle(*entry)
            except redis.RedisError:  # the job, if any, stays pending: this worker or another takes it again
                log.exception("the job store failed; retrying in a second")
                await asyncio.sleep(1)

    async def next_entry(self) -> tuple[bytes, str] | None:
        """A job left by a worker that went away, else a new one (waiting up to a second)."""
        idle_ms = int(self.settings.video_claim_idle_s * 1000)
        claimed = await self.store.redis.xautoclaim(STREAM, GROUP, self.name, idle_ms, "0-0", count=1)
        entries = claimed[1]
        if not entries:
            read = await self.store.redis.xreadgroup(GROUP, self.name, {STREAM: ">"}, count=1, block=_BLOCK_MS)
            entries = read[0][1] if read else []
        for entry_id, fields in entries:
            if fields:  # an entry trimmed meanwhile comes back empty
                return entry_id, fields[b"job_id"].decode()
            await self.store.redis.xack(STREAM, GROUP, entry_id)
        return None

    async def handle(self, entry_id: bytes, job_id: str) -> None:
        attempts = await self.store.attempt(job_id)
        job = await self.store.get(job_id) if attempts else None
        if job is None or job["status"] in ("done", "failed"):  # deleted, expired, or finished before a crash
            await self.ack(entry_id)
            return
        if attempts > self.settings.video_max_attempts:
            last = job.get("error") or {"code": "internal_error", "message": "its worker stopped"}
            message = f"gave up after {attempts - 1} attempts; the last: {last['message']}"
            await self.store.finish(job_id, "failed", error={"code": last["code"], "message": message})
            await self.ack(entry_id)
            return
        await self.store.update(job_id, status="running", worker=self.name)
        try:
            result = await self.process(job_id, job["options"], entry_id)
        except Cancelled:
            await self.ack(entry_id)
            return
        except Exception as exc:  # every failure is the job's, recorded and retried
            error = (
                {"code": exc.code, "message": exc.message}
                if isinstance(exc, ApiError)
                else {"code": "internal_error", "message": f"{type(exc).__name__}: {exc}"}
            )
            extra = {"job_id": job_id, "attempt": attempts, "code": error["code"], "reason": error["message"]}
            log.warning("video job failed", extra=extra)
            if attempts >= self.settings.video_max_attempts:
                message = f"failed {attempts} attempts; the last: {error['message']}"
                await self.store.finish(job_id, "failed", error={"code": error["code"], "message": message})
                await self.ack(entry_id)
            else:  # left pending: XAUTOCLAIM hands it out again after video_claim_idle_s
                await self.store.update(job_id, status="queued", error=error)
            return
        await self.store.finish(job_id, "done", progress=1, result=result)
        await self.store.redis.hdel(JobStore.job_key(job_id), "error")  # an earlier attempt's, if any
        await self.ack(entry_id)

    async def ack(self, entry_id: bytes) -> None:
        await self.store.redis.xack(STREAM, GROUP, entry_id)
        await self.store.redis.xdel(STREAM, entry_id)

    async def keep(self, entry_id: bytes) -> None:
        """Reset the entry's idle time (XCLAIM by its own holder), so that no other worker takes over a long job
        this one is still running."""
        await self.store.redis.xclaim(STREAM, GROUP, self.name, 0, [entry_id], justid=True)

    async def process(self, job_id: str, options: dict[str, Any], entry_id: bytes) -> dict[str, Any]:
        data = await self.store.data(job_id)
        if data is None:
            raise Cancelled
        features = list(options.get("features") or [])
        collection = options.get("collection")
        with video_file(data) as path:
            fps, frames = sampled_frames(str(path), float(options["sample_fps"]))
            frames_in = int(options.get("frames", 1))
            total = max(1, min(frames_in, math.ceil(frames_in * float(options["sample_fps"]) / fps)))
            tracker, tracks, analysed = Tracker(), {}, 0
            detect = DetectOptions(max_faces=self.settings.max_faces)
            done, kept = object(), time.monotonic()
            while (item := await asyncio.to_thread(next, frames, done)) is not done:
                t, frame = item  # type: ignore[misc]
                jpeg = jpeg_of(frame)
                body = await analyze(self.services, self.settings, jpeg, detect, set(features))
                for face, track_id in zip(body["faces"], tracker.update(body["faces"]), strict=True):
                    tracks.setdefault(track_id, TrackRecord(track_id)).add(t, face, jpeg)
                analysed += 1
                HEARTBEAT.touch()
                if time.monotonic() - kept > self.settings.video_claim_idle_s / 4:
                    await self.keep(entry_id)
                    kept = time.monotonic()
                if not await self.store.update(job_id, progress=round(min(analysed / total, 0.99), 4)):
                    raise Cancelled
        out = []
        for record in tracks.values():
            identity = await self.identify(collection, record) if collection else None
            out.append({
                "track_id": record.track_id,
                "start_s": record.frames[0]["t"],
                "end_s": record.frames[-1]["t"],
                "frames": record.frames,
                "identity": identity,
                "summary": summarise(record.faces, features),
            })  # fmt: skip
        duration = options.get("frames", analysed) / fps
        return {"duration_s": round(duration, 3), "fps": round(fps, 3), "frames_analyzed": analysed, "tracks": out}

    async def identify(self, collection: str, record: TrackRecord) -> dict[str, Any] | None:
        """The track's best face (largest × most confident) identified against the collection; None: no match."""
        assert record.best is not None
        _, jpeg, box = record.best
        found = await Gallery(self.services, self.settings).identify(collection, jpeg, DetectOptions(), 1, None)
        faces = sorted(found["faces"], key=lambda f: iou(f["box"], box), reverse=True)
        if not faces or iou(faces[0]["box"], box) < 0.5 or not faces[0]["matches"]:
            return None
        match = faces[0]["matches"][0]
        return {"subject_id": match["subject_id"], "name": match["name"], "similarity": match["similarity"]}


def jpeg_of(frame: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("the frame could not be encoded")
    return encoded.tobytes()


def client_of(settings: Settings) -> redis.Redis:
    # Its own client: XREADGROUP blocks up to _BLOCK_MS, well inside the socket timeout.
    return redis.Redis.from_url(settings.redis_url, socket_timeout=30, client_name="faceplane-video-worker")


async def main(settings: Settings) -> None:
    services = Services(settings)
    client = client_of(settings)
    worker = VideoWorker(settings, services, client)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stopping.set)  # the job in hand is finished first
    try:
        await worker.run()
    finally:
        await services.close()
        await client.aclose()


def alive() -> bool:
    """The probe's check: this pod's worker loop has run in the last ALIVE_S seconds."""
    return HEARTBEAT.exists() and time.time() - HEARTBEAT.stat().st_mtime < ALIVE_S


if __name__ == "__main__":
    if sys.argv[1:] == ["--alive"]:
        sys.exit(0 if alive() else 1)
    configured = Settings()
    configure_logging(configured.log_level, configured.log_json)
    asyncio.run(main(configured))
