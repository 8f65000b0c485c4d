"""GET /v1/audit: the latest biometric writes and deletes, or the ones refused (admin keys only)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from gateway.auth import key_store
from gateway.schemas import ERROR_RESPONSES

router = APIRouter(prefix="/v1", tags=["admin"])


@router.get("/audit", responses=ERROR_RESPONSES)
async def audit_log(
    request: Request,
    count: Annotated[int, Query(ge=1, le=1000)] = 100,
    refused: Annotated[
        bool, Query(description="the writes refused before they ran (no key, a bad key, scope, rate) instead")
    ] = False,
) -> Any:
    """Newest first: when, which key, what (create/delete subject, enrol/delete face) and its outcome (`ok`, or
    the refusal's error code) — never an image."""
    return {"entries": await key_store(request).audit_log(count, refused)}
