"""Admission by cost: one client's large photos cannot fill the detector while everyone else waits.

Each client (its API key, or its address when keys are off) may have at most `budget` pixels of images in flight
through this gateway at once; a request over it waits, up to `wait_s`, for that client's earlier ones to finish,
then gets 429 `too_many_pixels`. A client with nothing in flight is always admitted, so any legal photo goes
through. The budget is per gateway process: with N replicas a client has N budgets.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from gateway.error_codes import ErrorCode
from gateway.errors import ApiError


class PixelBudget:
    def __init__(self, budget: int, wait_s: float) -> None:
        self.budget = budget
        self.wait_s = wait_s
        self.in_flight: dict[str, int] = {}
        self._changed = asyncio.Condition()

    def _fits(self, client: str, pixels: int) -> bool:
        used = self.in_flight.get(client, 0)
        return used == 0 or used + pixels <= self.budget

    @asynccontextmanager
    async def admit(self, client: str, pixels: int) -> AsyncIterator[None]:
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(lambda: self._fits(client, pixels)), self.wait_s)
            except TimeoutError:
                raise ApiError(
                    ErrorCode.TOO_MANY_PIXELS,
                    f"this client already has {self.in_flight.get(client, 0)} pixels of images in flight "
                    f"(at most {self.budget}); retry when they are answered",
                    headers={"Retry-After": "1"},
                ) from None
            self.in_flight[client] = self.in_flight.get(client, 0) + pixels
        try:
            yield
        finally:
            async with self._changed:
                left = self.in_flight.pop(client) - pixels
                if left > 0:
                    self.in_flight[client] = left
                self._changed.notify_all()
