"""Dynamic batching: concurrent requests share model calls, each gets its own answers back, failures reach all."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from services.runtime.batching import DynamicBatcher


class RowSums:
    """A stand-in model: one answer per row (its sum); records the batch sizes it was called with."""

    def __init__(self, fail_on: float | None = None) -> None:
        self.calls: list[int] = []
        self.fail_on = fail_on
        self.lock = threading.Lock()

    def __call__(self, rows: np.ndarray) -> list[float]:
        with self.lock:
            self.calls.append(len(rows))
        sums = rows.reshape(len(rows), -1).sum(axis=1)
        if self.fail_on is not None and self.fail_on in sums:
            raise RuntimeError("model failed")
        return [float(s) for s in sums]


def requests(sizes: list[int]) -> list[np.ndarray]:
    start = 0
    out = []
    for n in sizes:
        out.append(np.arange(start, start + n, dtype=np.float32).reshape(n, 1))
        start += n
    return out


async def run_all(batcher: DynamicBatcher[float], rows: list[np.ndarray]) -> list[list[float]]:
    return list(await asyncio.gather(*(batcher(r) for r in rows)))


def test_concurrent_requests_share_a_model_call_and_get_their_own_rows_back() -> None:
    model = RowSums()
    batcher = DynamicBatcher(model, "test", max_batch_size=32, max_delay_ms=50, workers=1)
    rows = requests([1, 3, 2, 5])
    answers = asyncio.run(run_all(batcher, rows))
    assert answers == [[float(v) for v in r[:, 0]] for r in rows]
    assert sum(model.calls) == 11 and len(model.calls) < 4


def test_a_batch_never_exceeds_the_limit_and_a_request_is_never_split() -> None:
    model = RowSums()
    batcher = DynamicBatcher(model, "test", max_batch_size=4, max_delay_ms=20, workers=1)
    rows = requests([3, 3, 2, 6, 1])
    answers = asyncio.run(run_all(batcher, rows))
    assert answers == [[float(v) for v in r[:, 0]] for r in rows]
    assert all(size <= 4 for size in model.calls if size != 6)  # the request of six runs alone
    assert 6 in model.calls


def test_batching_off_runs_each_request_alone() -> None:
    model = RowSums()
    batcher = DynamicBatcher(model, "test", max_batch_size=1, max_delay_ms=50, workers=2)
    asyncio.run(run_all(batcher, requests([2, 2, 2])))
    assert sorted(model.calls) == [2, 2, 2]


def test_a_failed_model_call_fails_every_request_in_it_and_the_batcher_keeps_serving() -> None:
    model = RowSums(fail_on=0.0)
    batcher = DynamicBatcher(model, "test", max_batch_size=32, max_delay_ms=50, workers=1)

    async def scenario() -> list[float]:
        results = await asyncio.gather(*(batcher(r) for r in requests([1, 2])), return_exceptions=True)
        assert all(isinstance(r, RuntimeError) for r in results)
        return await batcher(np.array([[5.0]], dtype=np.float32))

    assert asyncio.run(scenario()) == [5.0]


def test_a_caller_that_gives_up_does_not_disturb_the_others() -> None:
    model = RowSums()
    batcher = DynamicBatcher(model, "test", max_batch_size=32, max_delay_ms=30, workers=1)

    async def scenario() -> list[float]:
        gone = asyncio.create_task(batcher(np.array([[1.0]], dtype=np.float32)))
        kept = asyncio.create_task(batcher(np.array([[2.0]], dtype=np.float32)))
        await asyncio.sleep(0)
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        return await kept

    assert asyncio.run(scenario()) == [2.0]


def test_an_idle_model_does_not_wait_for_company() -> None:
    """With nothing else running, a lone request goes at once instead of waiting max_delay_ms (5 s here)."""
    model = RowSums()
    batcher = DynamicBatcher(model, "test", max_batch_size=32, max_delay_ms=5000, workers=1)

    async def scenario() -> float:
        started = asyncio.get_running_loop().time()
        await batcher(np.array([[1.0]], dtype=np.float32))
        return asyncio.get_running_loop().time() - started

    assert asyncio.run(scenario()) < 2.5
