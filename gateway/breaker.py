"""A circuit breaker per downstream service: after `failures` calls in a row end UNAVAILABLE or
DEADLINE_EXCEEDED, calls fail at once (UNAVAILABLE, "circuit open") for `cooldown_s` instead of each waiting out
its deadline; then one call goes through as a trial, and its outcome closes or reopens the circuit. An
UNAVAILABLE that carries a service's machine code (its dependency is down, not the service) does not count.

Health checks always go through: readiness must see a service come back, and a SERVING answer closes the circuit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import grpc

from gateway.error_codes import ERROR_CODE_KEY
from gateway.metrics import CIRCUIT_OPEN

log = logging.getLogger("faceplane.gateway")
TRIPPING = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
HEALTH_PREFIX = "/grpc.health.v1.Health/"


class CircuitBreaker(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, service: str, failures: int, cooldown_s: float) -> None:
        self.service = service
        self.failures = max(1, failures)
        self.cooldown_s = cooldown_s
        self.consecutive = 0
        self.open_until = 0.0  # monotonic time; 0 = closed
        self.trial_running = False

    @property
    def is_open(self) -> bool:
        return self.open_until > 0

    def _record(self, ok: bool) -> None:
        if ok:
            if self.is_open:
                log.info("circuit closed", extra={"service": self.service})
            self.consecutive, self.open_until = 0, 0.0
        else:
            self.consecutive += 1
            if self.consecutive >= self.failures:
                if not self.is_open:
                    log.warning("circuit opened", extra={"service": self.service, "failures": self.consecutive})
                self.open_until = time.monotonic() + self.cooldown_s
        CIRCUIT_OPEN.labels(self.service).set(1 if self.is_open else 0)

    def _refuse(self) -> grpc.aio.AioRpcError:
        return grpc.aio.AioRpcError(
            grpc.StatusCode.UNAVAILABLE,
            grpc.aio.Metadata(),
            grpc.aio.Metadata(),
            details=f"circuit open: {self.consecutive} calls in a row failed, retrying in {self.cooldown_s:g} s",
        )

    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], client_call_details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        method = client_call_details.method
        method = method.decode() if isinstance(method, bytes) else method
        health = method.startswith(HEALTH_PREFIX)
        trial = False
        if self.is_open and not health:
            if time.monotonic() < self.open_until or self.trial_running:
                raise self._refuse()
            trial = self.trial_running = True  # half-open: this call decides
        try:
            call = await continuation(client_call_details, request)
            response = await call
        except grpc.aio.AioRpcError as exc:
            # A coded UNAVAILABLE (e.g. the embedder's gallery_unavailable) is the service answering that one of
            # its dependencies is down: the service itself is reachable, and its other calls still work.
            answered = any(key == ERROR_CODE_KEY for key, _ in exc.trailing_metadata() or ())
            if exc.code() in TRIPPING and not answered:
                self._record(ok=False)
            elif not health:
                self._record(ok=True)  # the service answered, if only to say no
            raise
        finally:
            if trial:
                self.trial_running = False
        if not health or getattr(response, "status", None) == 1:  # 1 = SERVING
            self._record(ok=True)
        return response
