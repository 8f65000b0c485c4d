"""Prometheus metrics for every gRPC server: latency, errors and in-flight requests per method."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from prometheus_client import Counter, Gauge, Histogram, start_http_server

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

RPC_LATENCY = Histogram(
    "faceplane_grpc_server_handling_seconds",
    "Time to answer one RPC, by service, method and status code.",
    ["service", "method", "code"],
    buckets=LATENCY_BUCKETS,
)
RPC_ERRORS = Counter(
    "faceplane_grpc_server_errors_total",
    "RPCs that ended with a status other than OK.",
    ["service", "method", "code"],
)
RPC_IN_FLIGHT = Gauge(
    "faceplane_grpc_server_in_flight",
    "RPCs being handled right now.",
    ["service", "method"],
)
MODEL_INFERENCE_SECONDS = Histogram(
    "faceplane_model_inference_seconds",
    "Time of one model call (one batch), by model.",
    ["model"],
    buckets=LATENCY_BUCKETS,
)
MODEL_BATCH_SIZE = Histogram(
    "faceplane_model_batch_size",
    "Crops per model call, by model.",
    ["model"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)


def serve_metrics(host: str, port: int) -> None:
    """Expose /metrics on its own port (a daemon thread); port 0 disables it."""
    if port:
        start_http_server(port, addr=host)


def _split_method(full_method: str) -> tuple[str, str]:
    # "/faceplane.v1.Detector/Detect" -> ("faceplane.v1.Detector", "Detect")
    service, _, method = full_method.lstrip("/").partition("/")
    return service, method


class MetricsInterceptor(grpc.aio.ServerInterceptor):
    """Wraps unary-unary handlers (all our RPCs are unary) with latency, error and in-flight metrics."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        service, method = _split_method(handler_call_details.method)
        inner = handler.unary_unary

        async def measured(request: Any, context: grpc.aio.ServicerContext) -> Any:
            in_flight = RPC_IN_FLIGHT.labels(service, method)
            in_flight.inc()
            start = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                response = await inner(request, context)
                code = context.code() or grpc.StatusCode.OK  # set by context.abort / set_code
                return response
            except grpc.aio.AbortError:
                code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            except Exception:
                code = grpc.StatusCode.UNKNOWN
                raise
            finally:
                in_flight.dec()
                name = code.name if isinstance(code, grpc.StatusCode) else str(code)
                RPC_LATENCY.labels(service, method, name).observe(time.perf_counter() - start)
                if code != grpc.StatusCode.OK:
                    RPC_ERRORS.labels(service, method, name).inc()

        return grpc.unary_unary_rpc_method_handler(
            measured,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
