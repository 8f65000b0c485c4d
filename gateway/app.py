"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from gateway.admission import PixelBudget
from gateway.auth import require
from gateway.clients import Services
from gateway.disconnects import CancelOnDisconnect
from gateway.errors import install_error_handlers
from gateway.headers import SecurityHeaders
from gateway.hosts import HostOriginCheck
from gateway.keys import KeyStore, connect
from gateway.limits import BodySizeLimit
from gateway.metrics import HttpMetrics
from gateway.routes import (
    anonymize,
    audit,
    cluster,
    collections,
    demo,
    docs,
    faces,
    generate,
    health,
    stream,
    verify,
    videos,
)
from gateway.settings import Settings
from gateway.tracing import RequestSpans, gateway_tracer_provider, shut_down
from gateway.videos import JobStore

# Room for multipart framing and form fields around the images (each may grow by 4/3 as base64).
_BODY_OVERHEAD = 64 * 1024
# The headers and boundary of one multipart part, per image of POST /v1/cluster (which takes files only).
_PART_OVERHEAD = 1024


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    provider = gateway_tracer_provider(settings)  # None with tracing off
    tracer = provider.get_tracer("faceplane.gateway") if provider else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.services = Services(settings, tracer)  # gRPC channels belong to the running loop
        store = connect(settings.redis_url, settings.key_store_pool_size, settings.key_store_pool_wait_s)
        app.state.keys = KeyStore(store)
        app.state.videos = JobStore(store, settings.video_result_ttl_s)  # the same Redis, its own prefix
        app.state.pixel_budget = PixelBudget(settings.client_pixel_budget, settings.client_pixel_wait_s)
        yield
        await app.state.services.close()
        await store.aclose()
        if provider is not None:
            await shut_down(provider)

    app = FastAPI(
        title="faceplane",
        version="0.1.0",
        summary="Face detection and analysis over one REST API",
        lifespan=lifespan,
        docs_url=None,  # served by routes/docs.py, with files of our own instead of a CDN's
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    app.state.settings = settings
    install_error_handlers(app)
    # Outermost last: security headers on every answer, the body cap before anything reads, then metrics, which
    # see every status below them (a refused Host, a client that left: 499).
    app.add_middleware(CancelOnDisconnect)
    app.add_middleware(HostOriginCheck, allowed_hosts=settings.allowed_hosts, bind_host=settings.host)
    app.add_middleware(HttpMetrics)
    # Two images at most per request (verify), each within max_upload_bytes; the header checks cap each one. The
    # cluster route alone takes up to cluster_max_images multipart files.
    cluster_cap = settings.cluster_max_images * (settings.max_upload_bytes + _PART_OVERHEAD) + _BODY_OVERHEAD
    app.add_middleware(
        BodySizeLimit,
        max_body_bytes=2 * (settings.max_upload_bytes * 4 // 3) + _BODY_OVERHEAD,
        by_path={cluster.PATH: cluster_cap, videos.PATH: settings.video_max_bytes + _BODY_OVERHEAD},
    )
    app.add_middleware(SecurityHeaders)
    if tracer is not None:  # outermost of all: the request's span covers every check above
        app.add_middleware(RequestSpans, tracer=tracer)
    read = [Depends(require("read"))]
    app.include_router(faces.router, dependencies=read)
    app.include_router(verify.router, dependencies=read)
    app.include_router(cluster.router, dependencies=read)
    app.include_router(collections.router)  # scopes per route: read, or enrol for writes
    app.include_router(anonymize.router, dependencies=read)
    app.include_router(generate.router, dependencies=read)
    app.include_router(videos.router, dependencies=read)
    app.include_router(audit.router, dependencies=[Depends(require("admin"))])
    app.include_router(stream.router)  # checks its key itself: a browser cannot set headers on a websocket
    app.include_router(health.router)
    app.include_router(demo.router)
    app.mount("/demo", demo.assets, name="demo")
    app.include_router(docs.router)
    app.mount(docs.ASSETS, docs.assets, name="docs-assets")
    return app
