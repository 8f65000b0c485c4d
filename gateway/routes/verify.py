"""POST /v1/verify."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from gateway.auth import check_collection
from gateway.error_codes import ErrorCode
from gateway.errors import ApiError
from gateway.images import read_text_fields
from gateway.routes.collections import ID
from gateway.routes.deps import ServicesDep, SettingsDep, admitted, checked_images, image_body
from gateway.schemas import ERROR_RESPONSES, VerifyResponse
from gateway.verification import verify

router = APIRouter(prefix="/v1", tags=["recognition"])
# image2 is left out when image1 is compared with an enrolled subject (collection and subject_id, in the query or
# as fields of the body): required in practice, but not by the schema.
VERIFY_BODY = image_body("image1", "image2", required=("image1",), text_fields={"collection": ID, "subject_id": ID})


@router.post("/verify", response_model=VerifyResponse, responses=ERROR_RESPONSES, openapi_extra=VERIFY_BODY)
async def verify_route(
    request: Request,
    services: ServicesDep,
    settings: SettingsDep,
    skip_detection: Annotated[bool, Query(description="each image already is one aligned face")] = False,
    collection: Annotated[
        str | None, Query(pattern=ID, description="with subject_id: verify image1 against an enrolled subject")
    ] = None,
    subject_id: Annotated[str | None, Query(pattern=ID, description="with collection")] = None,
    require_liveness: Annotated[
        bool,
        Query(
            description="refuse (422 spoof_detected, nothing compared) when the liveness service takes an image's "
            "face for a presentation attack (a printed photo or a screen); needs the liveness service"
        ),
    ] = False,
) -> Any:
    """Whether the largest face in `image1` is the person in `image2` — or, given `collection` and `subject_id`
    (query, form or JSON fields) instead of `image2`, the enrolled subject (best of their faces). Cosine
    similarity of the embeddings. With require_liveness, only if every image's face passes the liveness check."""
    fields = await read_text_fields(request, ("collection", "subject_id"), ID)
    collection = collection or fields.get("collection")
    subject_id = subject_id or fields.get("subject_id")
    if (collection is None) != (subject_id is None):
        raise ApiError(ErrorCode.INVALID_REQUEST, "give both collection and subject_id, or neither (and image2)")
    subject = (collection, subject_id) if collection is not None and subject_id is not None else None
    if subject:
        check_collection(request, subject[0])
    images, pixels = await checked_images(request, settings, ("image1",) if subject else ("image1", "image2"))
    async with admitted(request, pixels):
        return await verify(services, settings, images, skip_detection, subject, require_liveness)
