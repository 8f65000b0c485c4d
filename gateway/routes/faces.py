"""POST /v1/detect and POST /v1/analyze."""

from __future__ import annotations

import dataclasses
import re
from typing import Annotated, Any

from fastapi import APIRouter, Query

from gateway.analysis import DEFAULT_FEATURES, analyze, detect_faces, parse_features
from gateway.error_codes import ErrorCode
from gateway.errors import ApiError
from gateway.routes.deps import IMAGE_BODY, DetectOptionsDep, ImageDep, ServicesDep, SettingsDep
from gateway.schemas import ERROR_RESPONSES, AnalyzeResponse, DetectResponse
from services.catalogue import FEATURES

router = APIRouter(prefix="/v1", tags=["faces"])
_NAMES = "|".join(FEATURES)
# Exactly what the schema promises: names and commas, no spaces, no empty items (the video stream is laxer).
PATTERN = f"^({_NAMES})(,({_NAMES}))*$"


@router.post("/detect", response_model=DetectResponse, responses=ERROR_RESPONSES, openapi_extra=IMAGE_BODY)
async def detect_route(image: ImageDep, options: DetectOptionsDep, services: ServicesDep, settings: SettingsDep) -> Any:
    """Faces with boxes, confidence and five landmarks, in original-image pixels (EXIF orientation applied)."""
    return await detect_faces(services, settings, image, options)


@router.post(
    "/analyze",
    response_model=AnalyzeResponse,
    response_model_exclude_none=True,
    responses=ERROR_RESPONSES,
    openapi_extra=IMAGE_BODY,
)
async def analyze_route(
    image: ImageDep,
    options: DetectOptionsDep,
    services: ServicesDep,
    settings: SettingsDep,
    features: Annotated[
        str, Query(description=f"comma list of {','.join(FEATURES)}", json_schema_extra={"pattern": PATTERN})
    ] = DEFAULT_FEATURES,
    skip_detection: Annotated[bool, Query(description="the image already is one aligned face")] = False,
) -> Any:
    """Every face with the requested features; a failed service leaves its features in the face's `errors`."""
    if not re.fullmatch(PATTERN, features):
        raise ApiError(ErrorCode.INVALID_FEATURES, f"features is a comma list of {', '.join(FEATURES)}, no spaces")
    wanted = parse_features(features)
    options = dataclasses.replace(options, skip_detection=skip_detection)
    return await analyze(services, settings, image, options, wanted)
