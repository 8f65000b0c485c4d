"""Start a service: grpc.aio server with health, reflection and metrics; drain and exit on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import cv2
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection
from opentelemetry.sdk.trace import TracerProvider

from services.catalogue import SERVICES
from services.runtime.backends import BackendError
from services.runtime.channels import token_metadata
from services.runtime.error_codes import ErrorCode
from services.runtime.errors import ErrorInterceptor, ServiceError, handler_like
from services.runtime.logs import configure_logging
from services.runtime.metrics import MetricsInterceptor, serve_metrics
from services.runtime.settings import ServiceSettings, load_settings
from services.runtime.tracing import TracingInterceptor, shut_down, tracer_provider

log = logging.getLogger("faceplane.server")

# Exceptions of code outside the services' own that every service answers with a code: a model that cannot run.
RUNTIME_ERRORS: Mapping[type[Exception], ErrorCode] = {BackendError: ErrorCode.MODEL_UNAVAILABLE}


@dataclass(frozen=True)
class Registration:
    """One gRPC service to host: the servicer, its generated add_*_to_server function and its full name."""

    servicer: Any
    add_to_server: Callable[[Any, grpc.aio.Server], None]
    service_name: str
    # Health names for what the service depends on (e.g. its store) → a check that is True while it works;
    # published through the standard health service, so callers see a dependency go down by name.
    probes: Mapping[str, Callable[[], bool]] = field(default_factory=dict)
    # One pass of the model logic on a blank input before the service reports SERVING: the first call of a model
    # pays for lazy set-up (memory arenas; on CUDA the context and the kernels for that one input shape, hundreds
    # of ms), not a client's request. Other batch sizes and photo sizes still pay on their first use.
    warm_up: Callable[[], object] | None = None
    # Exceptions of other libraries that mean a coded failure (the embedder's redis.RedisError: gallery_unavailable);
    # the service's own exceptions are ServiceErrors and carry their code.
    errors: Mapping[type[Exception], ErrorCode] = field(default_factory=dict)


class ServiceServer:
    def __init__(self, settings: ServiceSettings, registrations: Sequence[Registration]) -> None:
        self.settings = settings
        self.registrations = list(registrations)
        self.health = HealthServicer()
        options = [
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
            # Clients reconnect now and then, and so re-resolve a headless Service's DNS: new replicas get traffic.
            # No grace limit: calls in flight on the old connection finish whatever their deadline.
            ("grpc.max_connection_age_ms", int(settings.max_connection_age_s * 1000)),
        ]
        errors = {kind: code for r in self.registrations for kind, code in r.errors.items()}
        # Metrics outermost, so every answer is counted; the error interceptor next, so it answers the token
        # interceptor's refusals as well as the servicers' exceptions.
        interceptors: list[grpc.aio.ServerInterceptor] = [
            MetricsInterceptor(),
            ErrorInterceptor({**RUNTIME_ERRORS, **errors}),
        ]
        self.tracer_provider: TracerProvider | None = None
        if settings.tracing:
            self.tracer_provider = tracer_provider(
                _traced_name(self.registrations),
                settings.trace_exporter,
                settings.otlp_endpoint,
                settings.trace_sample_ratio,
            )
            # Outside even the metrics: the span covers all the call costs, and ends with the status (and the
            # machine code) the error interceptor answered, as the caller sees it.
            interceptors.insert(0, TracingInterceptor(self.tracer_provider.get_tracer("faceplane.server")))
        token = settings.auth_token.get_secret_value()
        if token:
            interceptors.append(TokenInterceptor(token))
        self.server = grpc.aio.server(interceptors=interceptors, options=options)
        self.port = 0
        self.probes = {name: check for r in self.registrations for name, check in r.probes.items()}
        self._probing: asyncio.Task | None = None

    async def start(self) -> int:
        names = [r.service_name for r in self.registrations]
        for r in self.registrations:
            r.add_to_server(r.servicer, self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            [*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME], self.server
        )
        self.port = self.server.add_insecure_port(f"{self.settings.host}:{self.settings.port}")
        if self.port == 0:
            raise OSError(f"cannot bind {self.settings.host}:{self.settings.port}")
        for name in ["", *names]:  # before the port opens: nobody sees SERVING until the models are warm
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        # Shielded: a stop signal may cancel the warm-up below, but never grpc's own start half-way.
        await asyncio.shield(self.server.start())
        await self._warm_up()
        for name in ["", *names]:
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        if self.probes:
            await self._probe_once()
            self._probing = asyncio.create_task(self._probe_forever())
        log.info("serving", extra={"services": names, "address": f"{self.settings.host}:{self.port}"})
        return self.port

    async def _warm_up(self) -> None:
        for r in self.registrations:
            if r.warm_up is None:
                continue
            started = time.perf_counter()
            try:
                async with asyncio.timeout(self.settings.warm_up_timeout_s):
                    await _on_thread_of_its_own(r.warm_up)
            except Exception:  # e.g. a model server not up yet, or too slow: serve anyway, as without a warm-up
                log.warning("warm-up failed", extra={"service": r.service_name}, exc_info=True)
                continue
            ms = round((time.perf_counter() - started) * 1000, 1)
            log.info("warmed up", extra={"service": r.service_name, "ms": ms})

    async def _probe_once(self) -> None:
        for name, check in self.probes.items():
            try:
                ok = await asyncio.to_thread(check)
            except Exception:  # a probe that raises reports its dependency down
                ok = False
            status = health_pb2.HealthCheckResponse.SERVING if ok else health_pb2.HealthCheckResponse.NOT_SERVING
            await self.health.set(name, status)

    async def _probe_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.probe_interval_s)
            await self._probe_once()

    async def stop(self) -> None:
        # NOT_SERVING first so load balancers and the gateway's readiness stop sending, then drain in-flight RPCs.
        if self._probing is not None:
            self._probing.cancel()
        await self.health.enter_graceful_shutdown()
        await self.server.stop(self.settings.shutdown_grace_s)
        if self.tracer_provider is not None:
            await shut_down(self.tracer_provider)
        log.info("stopped")


def _traced_name(registrations: Sequence[Registration]) -> str:
    """The service's catalogue name (`detector`), which its spans carry as `service.name`."""
    hosted = {r.service_name for r in registrations}
    names = [s.name for s in SERVICES if s.grpc_service in hosted]
    return names[0] if names else next(iter(sorted(hosted)), "service")


# Open without the token: probes (the kubelet's, the gateway's readiness) and reflection (what the API looks like).
OPEN_PREFIXES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)


class TokenInterceptor(grpc.aio.ServerInterceptor):
    """Every call but health and reflection must carry the shared service token (`authorization: Bearer …`), as
    the gateway's channels send it; any other is answered UNAUTHENTICATED (`service_unauthenticated`) before it
    reaches a servicer."""

    def __init__(self, token: str) -> None:
        ((self.key, value),) = token_metadata(token)
        self.expected = value.encode()

    def _carries_token(self, metadata: Sequence[tuple[str, str | bytes]] | None) -> bool:
        for key, value in metadata or ():
            if key == self.key:
                sent = value if isinstance(value, bytes) else value.encode()
                return hmac.compare_digest(sent, self.expected)  # constant time: no guessing it byte by byte
        return False

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(OPEN_PREFIXES):
            return handler
        if self._carries_token(handler_call_details.invocation_metadata):
            return handler
        return _refusing(handler, method)


def _refusing(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
    """A handler of the same shape as `handler` that answers UNAUTHENTICATED."""

    async def refuse(_request: Any, context: grpc.aio.ServicerContext) -> None:
        log.warning("call without the service token refused", extra={"method": method, "peer": context.peer()})
        raise ServiceError(
            "this service takes calls only with its service token (authorization: Bearer …)",
            code=ErrorCode.SERVICE_UNAUTHENTICATED,
        )

    return handler_like(handler, refuse)


def _on_thread_of_its_own(fn: Callable[[], object]) -> asyncio.Future:
    """`fn()` on a daemon thread: not an inference worker (a warm-up past its time limit cannot be stopped and
    runs on), and not one the process must join before it exits (as it would a ThreadPoolExecutor's)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future = loop.create_future()

    def settle(result: object, error: BaseException | None) -> None:
        if future.done():  # given up on (time limit, cancelled)
            return
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)

    def run() -> None:
        try:
            result, error = fn(), None
        except BaseException as e:  # handed to the awaiting coroutine, as run_in_executor would
            result, error = None, e
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=run, name="warm-up", daemon=True).start()
    return future


async def serve_until_signalled(settings: ServiceSettings, registrations: Sequence[Registration]) -> None:
    server = ServiceServer(settings, registrations)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Servicers hand model calls to asyncio.to_thread: bound how many run at once to what the cores can do.
    workers = settings.inference_workers or os.cpu_count() or 1
    loop.set_default_executor(ThreadPoolExecutor(max_workers=workers, thread_name_prefix="inference"))
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    starting = asyncio.create_task(server.start())
    await asyncio.wait([starting, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
    if starting.done():
        starting.result()  # a server that could not start (its port taken) raises here
        await stop.wait()
    else:  # signalled while warming up: a pod being replaced need not finish warming first
        starting.cancel()
        await asyncio.wait([starting])  # unlike awaiting it, lets a cancellation of this coroutine through
    log.info("shutting down", extra={"grace_s": settings.shutdown_grace_s})
    await server.stop()


def run_service(
    service: str, build: Callable[[Any], Sequence[Registration]], settings_cls: type[ServiceSettings] = ServiceSettings
) -> None:
    """The whole life of a service process; `build` loads the model and returns what to host."""
    settings = load_settings(service, settings_cls)
    configure_logging(settings.log_level, settings.log_json)
    # OpenCV's pool (a thread per core) would compete with the inference workers, which already use every core:
    # OpenCV gets the same per-call budget as ONNX Runtime (0, "all cores", leaves OpenCV's default).
    if settings.intra_op_threads > 0:
        cv2.setNumThreads(settings.intra_op_threads)
    serve_metrics(settings.metrics_host, settings.metrics_port)
    registrations = build(settings)
    asyncio.run(serve_until_signalled(settings, registrations))
