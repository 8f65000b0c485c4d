"""Gateway metrics: HTTP latency per route, and latency of every downstream call by service name."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc
from prometheus_client import Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_LATENCY = Histogram(
    "faceplane_http_request_seconds", "Time to answer one HTTP request.", ["route", "method", "status"], buckets=BUCKETS
)
DOWNSTREAM_LATENCY = Histogram(
    "faceplane_grpc_client_seconds",
    "Time of one call from the gateway to a service, by service, method and status code.",
    ["service", "method", "code"],
    buckets=BUCKETS,
)
FEATURE_ERRORS = Counter(
    "faceplane_feature_errors_total", "Faces answered without their features because a service failed.", ["service"]
)


class HttpMetrics:
    """Latency per route, method and status, as plain ASGI middleware (so exceptions pass through unwrapped)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            path = getattr(scope.get("route"), "path", "unmatched")
            HTTP_LATENCY.labels(path, scope["method"], str(status)).observe(time.perf_counter() - start)


CIRCUIT_OPEN = Gauge(
    "faceplane_circuit_open", "1 while the gateway's circuit to a service is open (calls refused at once).", ["service"]
)


class ClientMetrics(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, service: str) -> None:
        self.service = service

    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], client_call_details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        method = client_call_details.method
        method = (method.decode() if isinstance(method, bytes) else method).rsplit("/", 1)[-1]
        start = time.perf_counter()
        code = "UNKNOWN"
        try:
            call = await continuation(client_call_details, request)
            response = await call
            code = "OK"
            return response
        except grpc.aio.AioRpcError as exc:
            code = exc.code().name
            raise
        finally:
            DOWNSTREAM_LATENCY.labels(self.service, method, code).observe(time.perf_counter() - start)
