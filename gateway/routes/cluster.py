"""POST /v1/cluster."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from gateway.error_codes import ErrorCode
from gateway.errors import ApiError
from gateway.grouping import cluster_images, for_image
from gateway.images import inspect_header
from gateway.limits import BodyTooLarge
from gateway.routes.deps import DetectOptionsDep, ServicesDep, SettingsDep, admitted
from gateway.schemas import ERROR_RESPONSES, Box
from gateway.settings import Settings

PATH = "/v1/cluster"  # app.py gives this path a body cap of its own
FIELD = "images"
MAX_FIELDS = 20  # text fields beside the files (none are read)

router = APIRouter(prefix="/v1", tags=["recognition"])


class ClusteredFace(BaseModel):
    image: int = Field(ge=0, description="the upload's index: the n-th `images` field sent, from 0")
    box: Box


class Cluster(BaseModel):
    cluster_id: int = Field(ge=0, description="0, 1, … in the order of each cluster's first face")
    members: list[ClusteredFace] = Field(description="two faces or more, in upload order")


class ClusterResponse(BaseModel):
    clusters: list[Cluster]
    noise: list[ClusteredFace] = Field(description="faces in no cluster: none of them matches another well enough")
    threshold: float = Field(description="cosine similarity every two faces of a cluster reach")


CLUSTER_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [FIELD],
                    "properties": {
                        FIELD: {
                            "type": "array",
                            "minItems": 1,
                            "items": {"type": "string", "format": "binary", "minLength": 1},
                            "description": "the images, one file field `images` each, repeated",
                        }
                    },
                }
            }
        },
    }
}


async def uploads(request: Request, settings: Settings) -> list[UploadFile]:
    """The `images` file fields of the multipart body, at most `cluster_max_images` of them."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "multipart/form-data":
        raise ApiError(
            ErrorCode.UNSUPPORTED_MEDIA_TYPE, f"send the images as multipart/form-data file fields '{FIELD}'"
        )
    cap = settings.cluster_max_images
    try:
        form = await request.form(max_files=cap, max_fields=MAX_FIELDS)
    except (BodyTooLarge, ClientDisconnect):
        raise
    except HTTPException as exc:  # Starlette's answer to a multipart parser error; one is "Too many files."
        if "too many files" in str(exc.detail).lower():
            raise ApiError(ErrorCode.TOO_MANY_IMAGES, f"at most {cap} images in one request") from exc
        raise ApiError(ErrorCode.INVALID_MULTIPART, f"the multipart body could not be parsed: {exc.detail}") from exc
    except Exception as exc:  # the multipart parser raises several types for malformed bodies
        raise ApiError(ErrorCode.INVALID_MULTIPART, f"the multipart body could not be parsed: {exc}") from exc
    files = form.getlist(FIELD)
    if not files:
        raise ApiError(ErrorCode.MISSING_IMAGE, f"the multipart body has no file field named '{FIELD}'")
    if len(files) > cap:
        raise ApiError(ErrorCode.TOO_MANY_IMAGES, f"{len(files)} images, at most {cap} in one request")
    for index, file in enumerate(files):
        if not isinstance(file, UploadFile):
            raise ApiError(ErrorCode.MISSING_IMAGE, f"image {index}: the field '{FIELD}' must be a file upload")
    return files  # type: ignore[return-value]  # all UploadFile, checked above


async def checked_pixels(files: list[UploadFile], settings: Settings) -> int:
    """Every image through the cheap checks of the other routes, before any is detected; their pixels."""
    pixels = 0
    for index, file in enumerate(files):
        data = await file.read()
        try:
            if not data:
                raise ApiError(ErrorCode.EMPTY_IMAGE, "the image is empty")
            if len(data) > settings.max_upload_bytes:
                raise ApiError(
                    ErrorCode.IMAGE_TOO_LARGE,
                    f"the image is {len(data)} bytes, more than the limit of {settings.max_upload_bytes}",
                )
            header = inspect_header(data, settings.max_pixels)
        except ApiError as exc:
            raise for_image(index, exc) from exc
        pixels += header.width * header.height
    return pixels


@router.post(
    PATH.removeprefix("/v1"), response_model=ClusterResponse, responses=ERROR_RESPONSES, openapi_extra=CLUSTER_BODY
)
async def cluster_route(
    request: Request,
    services: ServicesDep,
    settings: SettingsDep,
    options: DetectOptionsDep,
    threshold: Annotated[
        float | None,
        Query(
            gt=0.0,
            le=1.0,
            description="cosine similarity every two faces of a cluster reach (default: `CLUSTER_THRESHOLD`, 0.916)",
        ),
    ] = None,
) -> Any:
    """Every face of the images (repeated multipart file fields `images`) grouped by person: complete-linkage
    clustering of their embeddings, so that every two faces of a cluster are at or above the threshold; a face
    that joins no cluster is noise. Each face appears once, by the index of its image and its box."""
    services.require("embedder")  # `embedder_not_configured` before the body is read
    files = await uploads(request, settings)
    pixels = await checked_pixels(files, settings)

    async def read(index: int) -> bytes:
        await files[index].seek(0)  # read again: the checks above kept none of the bytes
        return await files[index].read()

    async with admitted(request, pixels):
        cut = settings.cluster_threshold if threshold is None else threshold
        return await cluster_images(services, settings, len(files), read, options, cut)
