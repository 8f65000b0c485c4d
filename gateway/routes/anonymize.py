"""POST /v1/anonymize."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from gateway.anonymize import anonymize
from gateway.images import inspect_header
from gateway.routes.deps import IMAGE_BODY, DetectOptionsDep, ImageDep, ServicesDep, SettingsDep
from gateway.schemas import ERROR_RESPONSES

router = APIRouter(prefix="/v1", tags=["faces"])


@router.post(
    "/anonymize",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}, "image/png": {}}}, **ERROR_RESPONSES},
    openapi_extra=IMAGE_BODY,
)
async def anonymize_route(
    image: ImageDep,
    options: DetectOptionsDep,
    services: ServicesDep,
    settings: SettingsDep,
    method: Annotated[
        Literal["generate", "blur"], Query(description="replace faces by generated ones, or blur")
    ] = "generate",
) -> Response:
    """The same image (JPEG stays JPEG, anything else becomes PNG; EXIF orientation applied) with every detected
    face made unrecognisable. `X-Faces-Anonymized` says how many."""
    header = inspect_header(image, settings.max_pixels)
    result = await anonymize(services, settings, image, header, method, options)
    return Response(result.data, media_type=result.media_type, headers={"X-Faces-Anonymized": str(result.faces)})
