"""Traces (OpenTelemetry) in the gateway, off by default: a span per `/v1/…` request, spans the routes open with
`span(...)` (the upload checks, the fan-out), and a CLIENT span per gRPC call whose W3C `traceparent` goes to the
service in the call's metadata, where services/runtime/tracing.py continues the trace.

The gateway is where a trace begins: a `traceparent` a client sends is ignored (an outside caller could otherwise
have every request recorded, past the sample ratio). Its TracerProvider is its own, not OpenTelemetry's global one,
and the request span's context carries its tracer for the spans below, as in the services: the provider, the
propagator and `span` are services/runtime/tracing.py's (a leaf module of the runtime the gateway may import).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.error_codes import ERROR_CODE_KEY
from gateway.settings import Settings
from services.runtime.tracing import PROPAGATOR, shut_down, span, tracer_provider, with_tracer

__all__ = ["ClientSpans", "RequestSpans", "gateway_tracer_provider", "shut_down", "span"]

# Where the `memory` exporter keeps the gateway's spans (the tests read it), apart from the services'.
MEMORY = InMemorySpanExporter()
TRACED_PREFIX = "/v1/"  # the API: probes, the demo's files and the docs would flood the sample


def gateway_tracer_provider(settings: Settings) -> TracerProvider | None:
    """The gateway's provider (`service.name` gateway), or None with tracing off."""
    if not settings.tracing:
        return None
    return tracer_provider(
        "gateway", settings.trace_exporter, settings.otlp_endpoint, settings.trace_sample_ratio, MEMORY
    )


class RequestSpans:
    """A SERVER span per `/v1/…` HTTP request, named by its route once routing has found it (plain ASGI
    middleware, as HttpMetrics)."""

    def __init__(self, app: ASGIApp, tracer: trace.Tracer) -> None:
        self.app = app
        self.tracer = tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Websockets (/v1/stream) are not traced: a stream lives for minutes; its frames take /v1/analyze's path.
        if scope["type"] != "http" or not scope["path"].startswith(TRACED_PREFIX):
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        status = 500
        # A new trace (otel_context.Context(): nothing of the caller's), carrying the tracer for the spans below.
        token = otel_context.attach(with_tracer(self.tracer, otel_context.Context()))
        try:
            with self.tracer.start_as_current_span(
                method,
                kind=SpanKind.SERVER,
                attributes={"http.request.method": method, "url.path": scope["path"]},
                set_status_on_exception=True,
            ) as request_span:

                async def record_status(message: Message) -> None:
                    nonlocal status
                    if message["type"] == "http.response.start":
                        status = message["status"]
                    await send(message)

                try:
                    await self.app(scope, receive, record_status)
                finally:
                    route = getattr(scope.get("route"), "path", None)
                    if route:
                        request_span.update_name(f"{method} {route}")
                        request_span.set_attribute("http.route", route)
                    request_span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        request_span.set_status(Status(StatusCode.ERROR, str(status)))
        finally:
            otel_context.detach(token)


class ClientSpans(grpc.aio.UnaryUnaryClientInterceptor):
    """A CLIENT span per call to `service` made inside a traced request, and its context in the call's metadata
    (`traceparent`), so the service's span is its child. Outermost of the channel's interceptors
    (gateway/clients.py): a call the breaker refuses shows as a failed span; gRPC's retries happen below it."""

    def __init__(self, service: str, tracer: trace.Tracer) -> None:
        self.service = service
        self.tracer = tracer

    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], client_call_details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        if not trace.get_current_span().get_span_context().is_valid:  # not in a traced request: /readyz's checks
            return await continuation(client_call_details, request)
        method = client_call_details.method
        method = method.decode() if isinstance(method, bytes) else method
        grpc_service, _, rpc = method.lstrip("/").partition("/")
        attributes = {
            "rpc.system.name": "grpc",
            "rpc.service": grpc_service,
            "rpc.method": rpc,
            "peer.service": self.service,
        }
        with self.tracer.start_as_current_span(
            f"{grpc_service}/{rpc}",
            kind=SpanKind.CLIENT,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as call_span:
            carrier: dict[str, str] = {}
            PROPAGATOR.inject(carrier)  # the context just made current: this span's
            metadata = grpc.aio.Metadata(*tuple(client_call_details.metadata or ()), *carrier.items())
            try:
                call = await continuation(client_call_details._replace(metadata=metadata), request)
                return await call
            except grpc.aio.AioRpcError as exc:
                call_span.set_attribute("rpc.response.status_code", exc.code().name)
                for key, value in exc.trailing_metadata() or ():
                    if key == ERROR_CODE_KEY:  # the service's machine code, e.g. invalid_crop
                        call_span.set_attribute("faceplane.error_code", _text(value))
                call_span.set_status(Status(StatusCode.ERROR, f"{exc.code().name}: {exc.details() or ''}"))
                raise
            except BaseException as exc:  # the request was cancelled (its client left), or a bug
                call_span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                raise


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
