"""Traces (OpenTelemetry) for every service, off by default: a server span per RPC, continuing the caller's trace
from the W3C `traceparent` in the call's metadata, and child spans the code opens with `span(...)`.

Each server has a TracerProvider of its own (its service's name on every span), not OpenTelemetry's process-wide
one: the fast tests host every service and the gateway in one process, and a global provider can be set only once.
The server span's context carries that server's tracer, so code below it (the detector's pipeline, the batcher, the
gallery, on the event loop or in worker threads: asyncio copies the context into both) opens its spans with it;
outside a traced call, and always with tracing off, `span` costs a context lookup and opens nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, Literal, ParamSpec, TypeVar

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from services.runtime.error_codes import ERROR_CODE_KEY

Exporter = Literal["otlp", "memory"]
P = ParamSpec("P")
R = TypeVar("R")

# Where the `memory` exporter keeps the spans of every service of this process (the tests read it).
MEMORY = InMemorySpanExporter()
# W3C trace context only: what is carried does not depend on OTEL_PROPAGATORS.
PROPAGATOR = TraceContextTextMapPropagator()
SHUTDOWN_WAIT_S = 2.0
_TRACER = otel_context.create_key("faceplane-tracer")
# Probes and reflection would be most of the traces and tell nothing about a request.
UNTRACED_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


class KeepingProcessor(SimpleSpanProcessor):
    """Exports each span as it ends, and leaves the exporter open when its provider shuts down: MEMORY outlives
    every server of the process (the tests read it after a server stopped, and start others)."""

    def shutdown(self) -> None:
        pass


def tracer_provider(
    service: str, exporter: Exporter, endpoint: str, sample_ratio: float, memory: InMemorySpanExporter = MEMORY
) -> TracerProvider:
    """A provider naming `service` on its spans, sampling new traces at `sample_ratio` and following the caller's
    decision otherwise (so one request is traced through every hop or not at all), exporting over OTLP/gRPC in a
    background thread (`endpoint` empty: OTEL_EXPORTER_OTLP_ENDPOINT, or localhost:4317) or into `memory` at once."""
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: service}),  # plus OTEL_RESOURCE_ATTRIBUTES (pod, node…)
        sampler=ParentBased(TraceIdRatioBased(sample_ratio)),
        shutdown_on_exit=False,  # shut_down, bounded, rather than an unbounded flush at exit
    )
    if exporter == "memory":
        provider.add_span_processor(KeepingProcessor(memory))
    else:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter  # only when used

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint or None)))
    return provider


def with_tracer(tracer: trace.Tracer, parent: otel_context.Context | None = None) -> otel_context.Context:
    """`parent` (default: the current context) carrying `tracer` for the spans opened below it."""
    return otel_context.set_value(_TRACER, tracer, parent)


def current_tracer() -> trace.Tracer | None:
    return otel_context.get_value(_TRACER)  # type: ignore[return-value]


async def shut_down(provider: TracerProvider) -> None:
    """Send the spans still queued, waiting at most SHUTDOWN_WAIT_S: with the collector unreachable the exporter
    retries for ~8 s, which would hold up a pod's exit (or `make run`'s, which kills after 10 s). On a daemon
    thread, which the process does not wait for."""
    worker = threading.Thread(target=provider.shutdown, name="trace-shutdown", daemon=True)
    worker.start()
    await asyncio.to_thread(worker.join, SHUTDOWN_WAIT_S)


@contextlib.contextmanager
def span(name: str, attributes: Mapping[str, Any] | None = None) -> Iterator[Span]:
    """A child span of the current one, in the current trace's tracer; nothing (an invalid span) outside one."""
    tracer = current_tracer()
    if tracer is None:
        yield trace.INVALID_SPAN
        return
    with tracer.start_as_current_span(name, attributes=attributes) as opened:
        yield opened


def traced(name: str, attributes: Mapping[str, Any] | None = None) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """A function (e.g. a gallery operation) run inside `span(name, attributes)`."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            with span(name, attributes):
                return fn(*args, **kwargs)

        return run

    return decorate


def record_span(
    name: str, start_ns: int, end_ns: int, attributes: Mapping[str, Any], error: BaseException | None = None
) -> None:
    """A child span of the current one that has already happened (the batcher learns its times afterwards)."""
    tracer = current_tracer()
    if tracer is None:
        return
    done = tracer.start_span(name, attributes=attributes, start_time=start_ns)
    if error is not None:
        done.record_exception(error)
        done.set_status(Status(StatusCode.ERROR, type(error).__name__))
    done.end(end_time=end_ns)


def _status_of(context: grpc.aio.ServicerContext) -> tuple[grpc.StatusCode | None, str | None]:
    """The call's status and, for a failure, the machine code the error interceptor sent in trailing metadata."""
    code = context.code()
    machine = None
    for key, value in context.trailing_metadata() or ():
        if key == ERROR_CODE_KEY:
            machine = value if isinstance(value, str) else value.decode()
    return code, machine


class TracingInterceptor(grpc.aio.ServerInterceptor):
    """A SERVER span per unary RPC, child of the caller's span when its metadata carries a `traceparent`.

    Installed outermost (services/runtime/server.py): the span covers the whole call, the error interceptor's
    answer included, so its status is the one the caller received, with the machine code (`faceplane.error_code`)
    the error interceptor sent."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self.tracer = tracer

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or handler.unary_unary is None or method.startswith(UNTRACED_PREFIXES):
            return handler
        inner = handler.unary_unary
        service, _, rpc = method.lstrip("/").partition("/")
        attributes = {"rpc.system.name": "grpc", "rpc.service": service, "rpc.method": rpc}

        async def traced_call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            carrier = dict(handler_call_details.invocation_metadata or ())
            parent = PROPAGATOR.extract(carrier)
            token = otel_context.attach(with_tracer(self.tracer, parent))
            try:
                with self.tracer.start_as_current_span(
                    f"{service}/{rpc}",
                    kind=SpanKind.SERVER,
                    attributes=attributes,
                    record_exception=False,
                    set_status_on_exception=False,
                ) as server_span:
                    try:
                        return await inner(request, context)
                    except BaseException as exc:
                        _end_with_failure(server_span, context, exc)
                        raise
            finally:
                otel_context.detach(token)

        return grpc.unary_unary_rpc_method_handler(
            traced_call,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _end_with_failure(server_span: Span, context: grpc.aio.ServicerContext, exc: BaseException) -> None:
    code, machine = _status_of(context)
    if isinstance(exc, grpc.aio.AbortError) and code is not None:  # answered with a status (ErrorInterceptor)
        server_span.set_attribute("rpc.response.status_code", code.name)
        if machine:
            server_span.set_attribute("faceplane.error_code", machine)
        server_span.set_status(Status(StatusCode.ERROR, f"{code.name}: {context.details() or ''}"))
    elif isinstance(exc, Exception):  # escaped every interceptor: grpc answers UNKNOWN
        server_span.record_exception(exc)
        server_span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
    else:  # cancelled: the caller gave up or its deadline passed
        server_span.set_status(Status(StatusCode.ERROR, "cancelled"))
