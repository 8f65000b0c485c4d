"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as redis
from fastapi import Depends, FastAPI

from gateway.auth import require
from gateway.clients import Services
from gateway.errors import install_error_handlers
from gateway.keys import KeyStore
from gateway.limits import BodySizeLimit
from gateway.metrics import HttpMetrics
from gateway.routes import anonymize, audit, collections, demo, faces, generate, health, stream, verify
from gateway.settings import Settings

# Room for multipart framing and form fields around the images (each may grow by 4/3 as base64).
_BODY_OVERHEAD = 64 * 1024


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.services = Services(settings)  # gRPC channels belong to the running loop
        store = redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
        app.state.keys = KeyStore(store)
        yield
        await app.state.services.close()
        await store.aclose()

    app = FastAPI(
        title="faceplane",
        version="0.1.0",
        summary="Face detection and analysis over one REST API",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.add_middleware(HttpMetrics)
    # Two images at most per request (verify), each within max_upload_bytes; the header checks cap each one.
    app.add_middleware(BodySizeLimit, max_body_bytes=2 * (settings.max_upload_bytes * 4 // 3) + _BODY_OVERHEAD)
    read = [Depends(require("read"))]
    app.include_router(faces.router, dependencies=read)
    app.include_router(verify.router, dependencies=read)
    app.include_router(collections.router)  # scopes per route: read, or enrol for writes
    app.include_router(anonymize.router, dependencies=read)
    app.include_router(generate.router, dependencies=read)
    app.include_router(audit.router, dependencies=[Depends(require("admin"))])
    app.include_router(stream.router)  # checks its key itself: a browser cannot set headers on a websocket
    app.include_router(health.router)
    app.include_router(demo.router)
    app.mount("/demo", demo.assets, name="demo")
    return app
