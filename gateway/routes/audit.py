"""GET /v1/audit: the latest biometric writes and deletes (admin keys only)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from gateway.auth import key_store
from gateway.schemas import ERROR_RESPONSES

router = APIRouter(prefix="/v1", tags=["admin"])


@router.get("/audit", responses=ERROR_RESPONSES)
async def audit_log(request: Request, count: Annotated[int, Query(ge=1, le=1000)] = 100) -> Any:
    """Newest first: when, which key, what (create/delete subject, enrol/delete face) — never an image."""
    return {"entries": await key_store(request).audit_log(count)}
