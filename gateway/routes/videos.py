"""POST /v1/videos (a job: 202), GET /v1/videos/{job_id} (its status and result), DELETE (cancel or forget)."""

from __future__ import annotations

import asyncio
import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect

from gateway.analysis import parse_features
from gateway.auth import check_collection
from gateway.error_codes import ErrorCode
from gateway.errors import ApiError
from gateway.limits import BodyTooLarge
from gateway.routes.collections import ID, ID_TEXT
from gateway.routes.deps import ServicesDep, SettingsDep
from gateway.routes.faces import PATTERN
from gateway.schemas import ERROR_RESPONSES, Box, ErrorDetail
from gateway.videos import JobStore, probe, require_collection
from services.catalogue import FEATURES

PATH = "/v1/videos"  # app.py gives this path a body cap of its own
FIELD = "video"
MAX_SAMPLE_FPS = 30.0
JOB_ID = r"^[0-9a-f]{24}$"

router = APIRouter(prefix="/v1", tags=["videos"])
JobId = Annotated[str, Path(pattern=JOB_ID, description="the id `POST /v1/videos` answered")]


class JobAccepted(BaseModel):
    job_id: str
    status: Literal["queued"]


class TrackFrame(BaseModel):
    t: float = Field(description="seconds from the start of the video")
    box: Box
    confidence: float


class Identity(BaseModel):
    subject_id: str
    name: str
    similarity: float


class Track(BaseModel):
    track_id: int
    start_s: float
    end_s: float
    frames: list[TrackFrame] = Field(description="the track's face in each analysed frame it is in")
    identity: Identity | None = Field(description="the best match in `collection` of the track's best face")
    summary: dict[str, dict[str, Any]] = Field(
        description="per feature asked for: a label's majority `label` and its `share` of the frames, or the mean "
        "of each number (e.g. age: `value`)"
    )


class VideoResult(BaseModel):
    duration_s: float
    fps: float
    frames_analyzed: int
    tracks: list[Track]


class Job(BaseModel):
    job_id: str
    status: Literal["queued", "running", "done", "failed"]
    progress: float = Field(ge=0, le=1, description="share of the sampled frames analysed")
    attempts: int = Field(ge=0, description="workers that have taken the job (more than one: a worker failed)")
    error: ErrorDetail | None = Field(None, description="why the job failed (status `failed`)")
    result: VideoResult | None = Field(None, description="status `done`")


VIDEO_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [FIELD],
                    "properties": {
                        FIELD: {
                            "type": "string",
                            "format": "binary",
                            "minLength": 1,
                            "description": "an MP4 (H.264), MOV, WebM or AVI video",
                        }
                    },
                }
            }
        },
    }
}


def jobs_of(request: Request) -> JobStore:
    return request.app.state.videos


async def _upload(request: Request, max_bytes: int) -> bytes:
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "multipart/form-data":
        raise ApiError(ErrorCode.UNSUPPORTED_MEDIA_TYPE, f"send the video as a multipart file field '{FIELD}'")
    try:
        form = await request.form(max_files=1, max_fields=10)
    except (BodyTooLarge, ClientDisconnect):
        raise
    except Exception as exc:  # the multipart parser raises several types for malformed bodies
        raise ApiError(ErrorCode.INVALID_MULTIPART, f"the multipart body could not be parsed: {exc}") from exc
    upload = form.get(FIELD)
    if not isinstance(upload, UploadFile):
        raise ApiError(ErrorCode.MISSING_IMAGE, f"the multipart body needs a file field named '{FIELD}'")
    data = await upload.read()
    if not data:
        raise ApiError(ErrorCode.EMPTY_IMAGE, "the video is empty")
    if len(data) > max_bytes:
        raise ApiError(ErrorCode.VIDEO_TOO_LARGE, f"the video is {len(data)} bytes, more than the limit of {max_bytes}")
    return data


@router.post(PATH.removeprefix("/v1"), status_code=202, response_model=JobAccepted, responses=ERROR_RESPONSES,
             openapi_extra=VIDEO_BODY)  # fmt: skip
async def submit_video(
    request: Request,
    settings: SettingsDep,
    services: ServicesDep,
    collection: Annotated[
        str | None, Query(pattern=ID, description=f"identify each track in this collection (it must exist): {ID_TEXT}")
    ] = None,
    features: Annotated[
        str | None,
        Query(
            description=f"per-face features summarised per track: comma list of {','.join(FEATURES)}",
            json_schema_extra={"pattern": PATTERN},
        ),
    ] = None,
    sample_fps: Annotated[
        float, Query(gt=0, le=MAX_SAMPLE_FPS, allow_inf_nan=False, description="frames analysed per second")
    ] = 5.0,
) -> Any:
    """Queue a video for analysis: faces tracked across frames, each track identified and summarised. Poll
    `GET /v1/videos/{job_id}` for its progress and result."""
    wanted: list[str] = []
    if features is not None:
        if not re.fullmatch(PATTERN, features):
            raise ApiError(ErrorCode.INVALID_FEATURES, f"features is a comma list of {', '.join(FEATURES)}, no spaces")
        wanted = sorted(parse_features(features))
    if collection is not None:
        check_collection(request, collection)
        await require_collection(services, settings, collection)
    data = await _upload(request, settings.video_max_bytes)
    info = await asyncio.to_thread(probe, data, settings.video_max_bytes, settings.video_max_duration_s)
    options = {"collection": collection, "features": wanted, "sample_fps": sample_fps, "frames": info.frames}
    job_id = await jobs_of(request).submit(data, options)
    return {"job_id": job_id, "status": "queued"}


@router.get(PATH.removeprefix("/v1") + "/{job_id}", response_model=Job, response_model_exclude_unset=True,
            responses=ERROR_RESPONSES)  # fmt: skip
async def get_video(request: Request, job_id: JobId) -> Any:
    """A job's status, its progress, and its result once done (kept `VIDEO_RESULT_TTL_S` after submission)."""
    job = await jobs_of(request).get(job_id)
    if job is None:
        raise ApiError(ErrorCode.NOT_FOUND, f"no video job {job_id!r} (unknown, deleted or expired)")
    return {k: v for k, v in job.items() if k in Job.model_fields}


@router.delete(PATH.removeprefix("/v1") + "/{job_id}", status_code=204, responses=ERROR_RESPONSES)
async def delete_video(request: Request, job_id: JobId) -> Response:
    """Cancel a queued or running job (its worker stops at its next frame), or forget a finished one."""
    if not await jobs_of(request).delete(job_id):
        raise ApiError(ErrorCode.NOT_FOUND, f"no video job {job_id!r} (unknown, deleted or expired)")
    return Response(status_code=204)
