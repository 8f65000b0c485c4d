"""Liveness, readiness (every configured service's gRPC health) and Prometheus metrics."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.clients import DEPENDENCIES
from gateway.routes.deps import ServicesDep, SettingsDep
from gateway.schemas import Readiness

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The gateway process is up."""
    return {"status": "ok"}


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(services: ServicesDep, settings: SettingsDep) -> Any:
    """200 when every required service is SERVING; lists each configured service's state."""
    checks = {name: service.status(settings.health_deadline_s) for name, service in services.by_name.items()}
    for name, service in services.by_name.items():
        for dependency, health_name in DEPENDENCIES.get(name, {}).items():
            checks[f"{name}/{dependency}"] = service.status(settings.health_deadline_s, health_name)
    states = await asyncio.gather(*checks.values())
    by_name = dict(zip(checks, states, strict=True))
    required_ok = all(by_name.get(n) == "SERVING" for n in settings.required_services)
    all_ok = all(s == "SERVING" for s in states)
    status = "ready" if all_ok else "degraded" if required_ok else "not_ready"
    return JSONResponse({"status": status, "services": by_name}, status_code=200 if required_ok else 503)


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
