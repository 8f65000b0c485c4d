"""The web demo: a static page at `/` (assets under /demo/) that uses the REST API of the same origin."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from gateway.headers import CSP, DEMO_CSP

STATIC = Path(__file__).resolve().parents[1] / "static"
router = APIRouter(include_in_schema=False)
assets = StaticFiles(directory=STATIC)


@router.get("/")
async def index() -> FileResponse:
    return FileResponse(STATIC / "index.html", headers={"cache-control": "no-cache", CSP: DEMO_CSP})
