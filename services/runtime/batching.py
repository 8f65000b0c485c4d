"""Dynamic batching: crops from concurrent requests are run through the model together.

A request's crops are never split. A batch closes when the next request would push it past `max_batch_size`
rows, or `max_delay_ms` after its first request arrived, whichever comes first — and at once when no other
batch is running (an idle model never waits for company). Up to `workers` batches run at once in worker
threads, and while they run the next batch fills. With `max_batch_size` 1 (or batching off) every
request is its own model call, as without this module.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np

from services.runtime.metrics import MODEL_BATCH_SIZE, MODEL_INFERENCE_SECONDS
from services.runtime.tracing import current_tracer, record_span, span

T = TypeVar("T")


@dataclass
class _Pending(Generic[T]):
    rows: np.ndarray
    future: asyncio.Future[list[T]]
    arrived: float = field(default_factory=time.monotonic)
    # For the request's trace: when it was queued, and its batch's model call (start, end, rows, requests).
    queued_ns: int = field(default_factory=time.time_ns)
    batch: tuple[int, int, int, int] | None = None


class DynamicBatcher(Generic[T]):
    def __init__(
        self,
        predict: Callable[[np.ndarray], list[T]],
        model: str,
        max_batch_size: int,
        max_delay_ms: float,
        workers: int,
    ) -> None:
        self._predict = predict
        self._model = model
        self.max_batch_size = max(1, max_batch_size)
        self.max_delay_s = max(0.0, max_delay_ms) / 1000
        self._workers = max(1, workers)
        self._queue: asyncio.Queue[_Pending[T]] | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()

    async def __call__(self, rows: np.ndarray) -> list[T]:
        """The model's answers for `rows` (one request's crops), in order."""
        if self.max_batch_size == 1:
            with span("inference", {"faceplane.model": self._model, "faceplane.batch.rows": len(rows)}):
                return await asyncio.to_thread(self._timed, rows)
        if self._queue is None:
            self._queue = asyncio.Queue()
            # In a context of its own: the collector serves every request, not the first one's trace.
            self._loop_task = asyncio.create_task(
                self._collect(), name=f"batcher-{self._model}", context=contextvars.Context()
            )
        future: asyncio.Future[list[T]] = asyncio.get_running_loop().create_future()
        pending = _Pending(rows, future)
        await self._queue.put(pending)
        try:
            return await future
        finally:
            if current_tracer() is not None:
                self._trace(pending)

    def _trace(self, pending: _Pending[T]) -> None:
        """The request's wait for its batch and the batch's model call, as spans of the request's own trace (the
        batch runs in the collector's task, outside every request's context); the call's span says how many rows
        and requests shared it."""
        if pending.batch is None:  # given up on before its batch ran
            return
        start, end, rows, requests = pending.batch
        model = {"faceplane.model": self._model}
        record_span("batch wait", pending.queued_ns, start, {**model, "faceplane.request.rows": len(pending.rows)})
        future = pending.future
        error = future.exception() if future.done() and not future.cancelled() else None
        attributes = {**model, "faceplane.batch.rows": rows, "faceplane.batch.requests": requests}
        record_span("inference", start, end, attributes, error)

    def _timed(self, rows: np.ndarray) -> list[T]:
        started = time.perf_counter()
        results = self._predict(rows)
        MODEL_INFERENCE_SECONDS.labels(self._model).observe(time.perf_counter() - started)
        MODEL_BATCH_SIZE.labels(self._model).observe(len(rows))
        return results

    async def _collect(self) -> None:
        assert self._queue is not None
        slots = asyncio.Semaphore(self._workers)
        carry: _Pending[T] | None = None
        while True:
            first = carry or await self._queue.get()
            carry = None
            batch, size = [first], len(first.rows)
            deadline = first.arrived + self.max_delay_s
            # Gather until full or the first request has waited max_delay — but only while other batches keep the
            # workers busy: with nothing running, waiting would only add latency, so take what is queued and go.
            while size < self.max_batch_size:
                timeout = deadline - time.monotonic() if self._running else 0
                try:
                    item = (
                        self._queue.get_nowait() if timeout <= 0 else await asyncio.wait_for(self._queue.get(), timeout)
                    )
                except (asyncio.QueueEmpty, TimeoutError):
                    break
                if size + len(item.rows) > self.max_batch_size:
                    carry = item
                    break
                batch.append(item)
                size += len(item.rows)
            await slots.acquire()
            task = asyncio.create_task(self._run(batch, slots))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self, batch: list[_Pending[T]], slots: asyncio.Semaphore) -> None:
        try:
            live = [p for p in batch if not p.future.done()]  # callers that gave up are skipped
            if not live:
                return
            rows = live[0].rows if len(live) == 1 else np.concatenate([p.rows for p in live])
            started = time.time_ns()
            try:
                results = await asyncio.to_thread(self._timed, rows)
            except Exception as exc:  # handed to every caller of the batch, who maps it
                for p in live:
                    p.batch = (started, time.time_ns(), len(rows), len(live))
                    if not p.future.done():
                        p.future.set_exception(exc)
                return
            ended = time.time_ns()
            start = 0
            for p in live:
                p.batch = (started, ended, len(rows), len(live))
                if not p.future.done():
                    p.future.set_result(results[start : start + len(p.rows)])
                start += len(p.rows)
        finally:
            slots.release()
