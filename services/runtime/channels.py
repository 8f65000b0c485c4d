"""What every gRPC client channel to a service carries: options for replicas that come and go, and the shared
service token (`authorization` metadata) that services/runtime/server.py checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

# A URL naming several replicas ("ipv4:10.0.0.1:50051,10.0.0.2:50051", or a headless Service's
# "dns:///detector:50051") spreads calls over all of them: gRPC's default pins every call to the first. A replaced
# pod's new address is looked up within seconds, not gRPC's default 30 s.
# A replica that went away (a crash, a restart, a replaced pod) is dialled again after 0.1 s, then less often, but
# at least once a second: with gRPC's defaults (1 s, ×1.6 per failed attempt, up to 120 s) a channel went on
# failing for up to 6 s after a service that had been down 10–40 s was back; now for at most ~1 s
# (bench/reconnect.py). One connection attempt a second per client is nothing to a service in a cluster or on
# loopback.
REPLICA_OPTIONS: list[tuple[str, int | str]] = [
    ("grpc.lb_policy_name", "round_robin"),
    ("grpc.dns_min_time_between_resolutions_ms", 2000),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]

TOKEN_METADATA_KEY = "authorization"


def token_metadata(token: str) -> tuple[tuple[str, str], ...]:
    """The metadata a call carries so that a service started with `AUTH_TOKEN=token` takes it."""
    return ((TOKEN_METADATA_KEY, f"Bearer {token}"),)


class ServiceToken(grpc.aio.UnaryUnaryClientInterceptor):
    """Adds the shared service token to every call of an aio channel (all our RPCs are unary)."""

    def __init__(self, token: str) -> None:
        self.metadata = token_metadata(token)

    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], client_call_details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        metadata = grpc.aio.Metadata(*tuple(client_call_details.metadata or ()), *self.metadata)
        return await continuation(client_call_details._replace(metadata=metadata), request)
