"""gRPC channels to the services: one per service, created inside the running loop, with deadlines and retries."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import grpc
from faceplane.v1 import common_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry import trace

from gateway.breaker import CircuitBreaker
from gateway.error_codes import ERROR_CODE_KEY, ErrorCode, ServiceCode, service_code, status_of
from gateway.errors import ApiError
from gateway.metrics import ClientMetrics
from gateway.settings import Settings
from gateway.tracing import ClientSpans
from services.catalogue import BY_NAME
from services.runtime.channels import REPLICA_OPTIONS, ServiceToken

log = logging.getLogger("faceplane.gateway")


# What a service depends on, under the health name it reports it by (services/embedder/servicer.py).
DEPENDENCIES: dict[str, dict[str, str]] = {"embedder": {"gallery": "faceplane.v1.Embedder/gallery"}}

# Retries with backoff of calls answered UNAVAILABLE, for the reads; gallery writes are never retried (a write
# that failed after committing would be applied twice: AddFaces mints new face ids on every attempt).
_RETRY = {
    "maxAttempts": 3,
    "initialBackoff": "0.05s",
    "maxBackoff": "0.5s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}
_WRITES = ["CreateSubject", "AddFaces", "DeleteSubject", "DeleteFace"]
# healthCheckConfig: each replica's health ("") is watched, and one that says NOT_SERVING (warming up, draining)
# gets no calls while the others do (round_robin, REPLICA_OPTIONS).
_SERVICE_CONFIG = json.dumps(
    {
        "healthCheckConfig": {"serviceName": ""},
        "methodConfig": [
            {"name": [{"service": "faceplane.v1.Embedder", "method": m} for m in _WRITES]},
            {"name": [{}], "retryPolicy": _RETRY},
        ],
    }
)
_MAX_MESSAGE = 64 * 1024 * 1024

# The client-facing code of the gRPC statuses that mean the client asked for something wrong or absent (a
# service's own machine code, e.g. model_mismatch, takes its place when it sends one).
_CODE_OF = {
    grpc.StatusCode.NOT_FOUND: ErrorCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS: ErrorCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION: ErrorCode.FAILED_PRECONDITION,
    grpc.StatusCode.UNIMPLEMENTED: ErrorCode.NOT_IMPLEMENTED,
}


@dataclass
class Service:
    name: str
    url: str
    channel: grpc.aio.Channel
    stub: Any
    health: health_pb2_grpc.HealthStub
    grpc_name: str
    info: common_pb2.ServiceInfo | None = field(default=None)

    async def describe(self, deadline_s: float) -> common_pb2.ServiceInfo:
        """The service's models and crop specs, asked once and kept (asked again after a failure)."""
        if self.info is None:
            self.info = await self.stub.Describe(common_pb2.DescribeRequest(), timeout=deadline_s)
        return self.info

    async def status(self, deadline_s: float, health_name: str | None = None) -> str:
        """The service's gRPC health (or, given `health_name`, that of one of its dependencies)."""
        request = health_pb2.HealthCheckRequest(service=health_name or self.grpc_name)
        try:
            reply = await self.health.Check(request, timeout=deadline_s)
        except grpc.aio.AioRpcError as exc:
            self.info = None
            return (
                "UNREACHABLE"
                if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
                else exc.code().name
            )
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


class Services:
    def __init__(self, settings: Settings, tracer: trace.Tracer | None = None) -> None:
        self.settings = settings
        self.by_name: dict[str, Service] = {}
        options = [
            ("grpc.service_config", _SERVICE_CONFIG),
            ("grpc.enable_retries", 1),
            *REPLICA_OPTIONS,
            ("grpc.max_receive_message_length", _MAX_MESSAGE),
            ("grpc.max_send_message_length", _MAX_MESSAGE),
        ]
        for name, url in settings.service_urls().items():
            entry = BY_NAME[name]
            breaker = CircuitBreaker(name, settings.breaker_failures, settings.breaker_cooldown_s)
            interceptors: list[grpc.aio.ClientInterceptor] = [ClientMetrics(name), breaker]
            if tracer is not None:  # outermost: a span per call, the breaker's refusals included
                interceptors.insert(0, ClientSpans(name, tracer))
            if token := settings.service_token.get_secret_value():
                interceptors.append(ServiceToken(token))  # the services' AUTH_TOKEN (services/runtime/server.py)
            channel = grpc.aio.insecure_channel(url, options=options, interceptors=interceptors)
            self.by_name[name] = Service(
                name, url, channel, entry.stub(channel), health_pb2_grpc.HealthStub(channel), entry.grpc_service
            )

    def get(self, name: str) -> Service | None:
        return self.by_name.get(name)

    def require(self, name: str) -> Service:
        service = self.by_name.get(name)
        if service is None:
            raise ApiError(service_code(name, ServiceCode.NOT_CONFIGURED), f"the {name} service is not deployed")
        return service

    async def close(self) -> None:
        for service in self.by_name.values():
            await service.channel.close()


def rpc_error_code(exc: grpc.aio.AioRpcError) -> str | None:
    for key, value in exc.trailing_metadata() or ():
        if key == ERROR_CODE_KEY:
            return value if isinstance(value, str) else value.decode()
    return None


def to_api_error(service: str, exc: grpc.aio.AioRpcError) -> ApiError:
    """What the client sees when a call to `service` failed."""
    code = exc.code()
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return _passed_on(exc, ErrorCode.INVALID_ARGUMENT, "invalid request")
    if code in _CODE_OF:
        return _passed_on(exc, _CODE_OF[code], _CODE_OF[code].value)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:  # gRPC has cancelled the call, on the service too
        log.warning("service timed out", extra={"service": service, "details": exc.details()})
        return ApiError(service_code(service, ServiceCode.TIMEOUT), f"the {service} service did not answer in time")
    if code == grpc.StatusCode.UNAVAILABLE:
        log.warning("service unavailable", extra={"service": service, "grpc_code": code.name, "details": exc.details()})
        unavailable = service_code(service, ServiceCode.UNAVAILABLE)
        machine = rpc_error_code(exc) or unavailable  # e.g. the embedder's gallery_unavailable
        if status_of(machine, 0) != ServiceCode.UNAVAILABLE.http_status:
            machine = unavailable
        return ApiError(machine, f"the {service} service is unavailable ({code.name.lower()}): {exc.details()}")
    log.error("service failed", extra={"service": service, "grpc_code": code.name, "details": exc.details()})
    return ApiError(service_code(service, ServiceCode.FAILED), f"the {service} service failed ({code.name.lower()})")


def _passed_on(exc: grpc.aio.AioRpcError, default: ErrorCode, message: str) -> ApiError:
    """The service's own machine code where the registry knows it, else the gRPC status's default code."""
    machine = rpc_error_code(exc)
    if machine is None or status_of(machine, 0) == 0:
        machine = default
    return ApiError(machine, exc.details() or message)
