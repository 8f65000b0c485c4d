"""Legal but costly photos: one client's large uploads neither exhaust the detector nor starve other clients."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import pytest

from deploy.local.stack import Stack
from gateway.admission import PixelBudget
from gateway.errors import ApiError
from tests import images
from tests.gateway.own_gateway import on_the_stack, own_gateway

pytestmark = pytest.mark.slow
# The chart's memory limit of a detector pod (values.yaml): a pod above it is OOM-killed.
POD_LIMIT_BYTES = int(1.5 * 2**30)


def large_photo(side: int = 2600) -> bytes:
    """A crowd of 25 faces, side × side (6.8 MP at 2600; 1.7 MB): MTCNN, before YuNet, spent about a second on it
    (its pyramid's proposals grow with the texture), so 24 of them at once outlasted the detect deadline."""
    return images.encode(np.tile(images.astronaut(), (5, 5, 1))[:side, :side], quality=90)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_large_photos_at_once_leave_other_clients_served_and_the_detector_bounded(stack: Stack, tmp_path: Path):
    big, small = large_photo(), images.encode(images.astronaut(), quality=90)
    with own_gateway(on_the_stack(stack, "detector"), tmp_path / "gateway.log") as api:

        async def burst() -> tuple[list[httpx.Response], list[httpx.Response]]:
            # Two clients, told apart by their addresses (keys are off): 127.0.0.1 sends the large photos.
            heavy = httpx.AsyncClient(base_url=api.base_url, timeout=120, limits=httpx.Limits(max_connections=24))
            other = httpx.AsyncClient(
                base_url=api.base_url, timeout=120, transport=httpx.AsyncHTTPTransport(local_address="127.0.0.2")
            )
            async with heavy, other:
                files = {"image": ("big.jpg", big, "image/jpeg")}
                large = [asyncio.create_task(heavy.post("/v1/detect", files=files)) for _ in range(24)]
                await asyncio.sleep(0.5)  # the large ones are in: the small ones meet the queue they made
                smalls = []
                for _ in range(33):
                    smalls.append(await other.post("/v1/detect", files={"image": ("s.jpg", small, "image/jpeg")}))
                return list(await asyncio.gather(*large)), smalls

        large, smalls = asyncio.run(burst())
    assert Counter(r.status_code for r in smalls) == {200: 33}, [r.text for r in smalls if r.status_code != 200]
    assert all(len(r.json()["faces"]) == 1 for r in smalls)
    # The large ones are each answered or told to come back later; none failed.
    codes = Counter(r.status_code if r.status_code == 200 else r.json()["error"]["code"] for r in large)
    assert set(codes) <= {200, "too_many_pixels"} and codes[200] >= 1, codes
    assert rss_bytes(stack.procs["detector"].pid) < POD_LIMIT_BYTES


async def test_a_client_over_its_pixel_budget_waits_and_others_do_not():
    budget = PixelBudget(budget=10, wait_s=0.2)
    order: list[str] = []

    async def hold(client: str, pixels: int, release: asyncio.Event) -> None:
        async with budget.admit(client, pixels):
            order.append(client)
            await release.wait()

    first, second = asyncio.Event(), asyncio.Event()
    a1 = asyncio.create_task(hold("a", 8, first))
    await asyncio.sleep(0)
    a2 = asyncio.create_task(hold("a", 8, second))  # over a's budget: waits for a1
    b = asyncio.create_task(hold("b", 8, second))  # another client: admitted at once
    await asyncio.sleep(0.05)
    assert order == ["a", "b"]
    first.set()
    await a1
    await asyncio.sleep(0.05)
    assert order == ["a", "b", "a"]
    second.set()
    await asyncio.gather(a2, b)
    assert budget.in_flight == {}


async def test_a_client_that_stays_over_its_budget_gets_429():
    budget = PixelBudget(budget=10, wait_s=0.05)
    release = asyncio.Event()

    async def hold() -> None:
        async with budget.admit("a", 10):
            await release.wait()

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0)
    with pytest.raises(ApiError) as refused:
        async with budget.admit("a", 1):
            pass
    assert (refused.value.status, refused.value.code) == (429, "too_many_pixels")
    assert refused.value.headers["Retry-After"] == "1"
    release.set()
    await holder
    async with budget.admit("a", 50):  # alone, a photo over the budget still goes through
        assert budget.in_flight == {"a": 50}
