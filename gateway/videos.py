"""Video jobs: the cheap check of an upload, and the jobs' records in Redis (the galleries' Redis, its own prefix).

A job is three keys, all expiring `video_result_ttl_s` after submission: its hash (status, progress, the options,
the attempts, the error or the result as JSON), its upload (the video's bytes, deleted once a worker is done with
it) and an entry in the job stream, which the workers read as one consumer group (gateway/video_worker.py). The
bytes sit in Redis rather than on a shared disk because Redis is the one store every gateway and worker already
reaches, in a cluster as on one machine; `video_max_bytes` (100 MB by default) keeps that affordable.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import redis.asyncio as redis

from gateway.clients import Services
from gateway.error_codes import ErrorCode
from gateway.errors import ApiError
from gateway.recognition import Gallery
from gateway.settings import Settings

PREFIX = "fp:video"
STREAM = f"{PREFIX}:jobs"
GROUP = "workers"
STATUSES = ("queued", "running", "done", "failed")

# What each supported container starts with: MP4/MOV (ISO BMFF: "ftyp" at byte 4; QuickTime may start with
# "moov", "mdat", "wide" or "free"), WebM/Matroska (EBML), AVI (RIFF … AVI).
_ISO_BOXES = (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip")
_EBML = b"\x1a\x45\xdf\xa3"

# HSET only while the job still exists: a job deleted (cancelled) meanwhile is not brought back by its worker.
_SET_IF_EXISTS = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""


def container_of(data: bytes) -> str | None:
    if data[4:8] in _ISO_BOXES:
        return "mp4"
    if data[:4] == _EBML:
        return "webm"
    if data[:4] == b"RIFF" and data[8:12] == b"AVI ":
        return "avi"
    return None


@dataclass(frozen=True)
class VideoInfo:
    container: str
    fps: float
    frames: int
    width: int
    height: int

    @property
    def duration_s(self) -> float:
        return self.frames / self.fps if self.fps > 0 else 0.0


@contextmanager
def video_file(data: bytes, suffix: str = ".video") -> Iterator[Path]:
    """The bytes as a temporary file, which OpenCV's FFmpeg reader wants."""
    fd, name = tempfile.mkstemp(suffix=suffix, prefix="faceplane-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        yield Path(name)
    finally:
        os.unlink(name)


def probe(data: bytes, max_bytes: int, max_duration_s: float) -> VideoInfo:
    """The container, frame rate, length and size of an uploaded video, from its header, its first frame and its
    last: refuses what is not a video, a truncated one (its last frame is missing), and one over the caps."""
    if len(data) > max_bytes:
        raise ApiError(ErrorCode.VIDEO_TOO_LARGE, f"the video is {len(data)} bytes, more than the limit of {max_bytes}")
    container = container_of(data)
    if container is None:
        raise ApiError(ErrorCode.UNSUPPORTED_VIDEO, "the upload is not an MP4, MOV, WebM or AVI video")
    with video_file(data) as path:
        capture = cv2.VideoCapture(str(path))
        try:
            if not capture.isOpened():
                raise ApiError(ErrorCode.CORRUPT_VIDEO, f"the {container} container cannot be read (truncated?)")
            fps = capture.get(cv2.CAP_PROP_FPS)
            frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
            ok, first = capture.read()
            if not ok or first is None or fps <= 0:
                raise ApiError(ErrorCode.CORRUPT_VIDEO, "the video's first frame cannot be decoded")
            info = VideoInfo(container, fps, max(frames, 1), first.shape[1], first.shape[0])
            if info.duration_s > max_duration_s:
                raise ApiError(
                    ErrorCode.VIDEO_TOO_LONG,
                    f"the video is {info.duration_s:.1f} s long, more than the limit of {max_duration_s:g} s",
                )
            if frames > 1:  # a truncated file still names its whole length in its header: its last frame is gone
                capture.set(cv2.CAP_PROP_POS_FRAMES, frames - 1)
                ok, _ = capture.read()
                if not ok:
                    raise ApiError(ErrorCode.CORRUPT_VIDEO, "the video's last frame cannot be decoded (truncated?)")
        finally:
            capture.release()
    return info


async def require_collection(services: Services, settings: Settings, collection: str) -> None:
    """404 `not_found` unless the collection exists: refused at upload, not by the worker once the job has waited
    its turn."""
    await Gallery(services, settings).list_subjects(collection, 1, "")


def new_job_id() -> str:
    return secrets.token_hex(12)


class JobStore:
    """The jobs' records, for the route (submit, read, delete) and the workers (claim, progress, finish)."""

    def __init__(self, client: redis.Redis, ttl_s: int) -> None:
        self.redis = client
        self.ttl_s = ttl_s
        self._set_if_exists = client.register_script(_SET_IF_EXISTS)

    @staticmethod
    def job_key(job_id: str) -> str:
        return f"{PREFIX}:job:{job_id}"

    @staticmethod
    def data_key(job_id: str) -> str:
        return f"{PREFIX}:data:{job_id}"

    async def ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def submit(self, data: bytes, options: dict[str, Any]) -> str:
        job_id = new_job_id()
        record = {"status": "queued", "progress": 0, "attempts": 0, "options": json.dumps(options)}
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self.data_key(job_id), data, ex=self.ttl_s)
            pipe.hset(self.job_key(job_id), mapping=record)
            pipe.expire(self.job_key(job_id), self.ttl_s)
            pipe.xadd(STREAM, {"job_id": job_id})
            await pipe.execute()
        return job_id

    async def get(self, job_id: str) -> dict[str, Any] | None:
        raw = await self.redis.hgetall(self.job_key(job_id))
        if not raw:
            return None
        fields = {k.decode(): v.decode() for k, v in raw.items()}
        out: dict[str, Any] = {
            "job_id": job_id,
            "status": fields["status"],
            "progress": round(float(fields.get("progress", 0)), 4),
            "attempts": int(fields.get("attempts", 0)),
            "options": json.loads(fields.get("options", "{}")),
        }
        for name in ("error", "result"):
            if name in fields:
                out[name] = json.loads(fields[name])
        return out

    async def delete(self, job_id: str) -> bool:
        """Forget the job (a worker running it stops at its next frame: its writes find no job)."""
        return bool(await self.redis.delete(self.job_key(job_id), self.data_key(job_id)))

    async def data(self, job_id: str) -> bytes | None:
        return await self.redis.get(self.data_key(job_id))

    async def update(self, job_id: str, **fields: Any) -> bool:
        """Write fields of a job that still exists; False when it was deleted (the worker then stops)."""
        args = [v for k, value in fields.items() for v in (k, value if isinstance(value, str | int | float) else
                json.dumps(value))]  # fmt: skip
        return bool(await self._set_if_exists(keys=[self.job_key(job_id)], args=args))

    async def attempt(self, job_id: str) -> int:
        """Count one more worker taking the job; 0 when the job is gone."""
        if not await self.redis.exists(self.job_key(job_id)):
            return 0
        return int(await self.redis.hincrby(self.job_key(job_id), "attempts", 1))

    async def finish(self, job_id: str, status: str, **fields: Any) -> None:
        await self.update(job_id, status=status, **fields)
        await self.redis.delete(self.data_key(job_id))
