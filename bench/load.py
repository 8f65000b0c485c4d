"""The load and timing loops the benchmarks share, light enough for a benchmark's client processes to import."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np


def faces_per_s(fn: Callable[[np.ndarray], Any], crops: np.ndarray, seconds: float) -> float:
    fn(crops)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn(crops)
        done += len(crops)
    return done / (time.perf_counter() - start)


async def timed_posts(
    post: Callable[[int], Awaitable[int | None]], clients: int, seconds: float, warmups: int = 1, start_at: float = 0.0
) -> tuple[list[float], int, int, float]:
    """`clients` callers (numbered 0…) each awaiting `post(i)` back to back for `seconds`, after `warmups` untimed
    rounds and, given `start_at` (wall clock), not before it. `post` answers the faces found, None for a failure.
    Returns the latencies (s), faces, failures and the timed wall time."""
    for _ in range(warmups):  # connections, first batches
        await asyncio.gather(*(post(i) for i in range(clients)))
    await asyncio.sleep(max(0.0, start_at - time.time()))
    latencies: list[float] = []
    faces, errors = 0, 0
    deadline = time.perf_counter() + seconds

    async def worker(i: int) -> None:
        nonlocal faces, errors
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            found = await post(i)
            latencies.append(time.perf_counter() - start)
            if found is None:
                errors += 1
            else:
                faces += found

    start = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(clients)))
    return latencies, faces, errors, time.perf_counter() - start


def latency_summary(latencies_s: list[float], wall: float) -> dict[str, float]:
    ms = 1000 * np.array(latencies_s)
    return {
        "requests": len(ms),
        "images_per_s": len(ms) / wall,
        "ms_p50": float(np.percentile(ms, 50)),
        "ms_p95": float(np.percentile(ms, 95)),
        "ms_p99": float(np.percentile(ms, 99)),
    }
