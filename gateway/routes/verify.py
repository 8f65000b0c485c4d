"""POST /v1/verify."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from gateway.routes.deps import ImagePairDep, ServicesDep, SettingsDep, image_body
from gateway.schemas import ERROR_RESPONSES, VerifyResponse
from gateway.verification import verify

router = APIRouter(prefix="/v1", tags=["recognition"])


@router.post(
    "/verify", response_model=VerifyResponse, responses=ERROR_RESPONSES, openapi_extra=image_body("image1", "image2")
)
async def verify_route(
    images: ImagePairDep,
    services: ServicesDep,
    settings: SettingsDep,
    skip_detection: Annotated[bool, Query(description="each image already is one aligned face")] = False,
) -> Any:
    """Whether the largest face in `image1` and in `image2` are the same person (cosine similarity of embeddings)."""
    return await verify(services, settings, images, skip_detection)
