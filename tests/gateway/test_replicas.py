"""A service URL naming several replicas: the gateway spreads its calls over all of them (gRPC round_robin)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from deploy.local.stack import Stack, free_port
from tests import images

pytestmark = pytest.mark.slow


def detect_calls(metrics_port: int) -> float:
    """Detect RPCs the replica has answered, from its Prometheus endpoint."""
    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
    pattern = r'faceplane_grpc_server_handling_seconds_count\{[^}]*method="Detect"[^}]*\} (\S+)'
    return sum(float(v) for v in re.findall(pattern, text))


@pytest.fixture(scope="module")
def two_replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[int]]]:
    """Two detectors and a gateway, started as `make run REPLICAS=detector=2` starts them."""
    log_dir: Path = tmp_path_factory.mktemp("replicas")
    names = ["gateway", "detector", "detector-metrics"]
    ports = {n: free_port() for n in names}
    stack = Stack(ports=ports, log_dir=log_dir, data_dir=log_dir, services=["detector"], replicas={"detector": 2})
    stack.start(with_redis=False)
    try:
        yield stack.gateway_urls()[0], [stack.ports["detector-metrics"], stack.ports["detector-1-metrics"]]
    finally:
        stack.stop()


def test_calls_are_spread_over_every_replica(two_replicas: tuple[str, list[int]]) -> None:
    url, metrics_ports = two_replicas
    before = [detect_calls(p) for p in metrics_ports]
    data = images.encode(images.astronaut())
    with httpx.Client(base_url=url, timeout=60) as client:
        for _ in range(8):
            r = client.post("/v1/detect", files={"image": ("a.jpg", data, "image/jpeg")})
            assert r.status_code == 200 and len(r.json()["faces"]) == 1
    served = [detect_calls(p) - b for p, b in zip(metrics_ports, before, strict=True)]
    assert sum(served) == 8
    assert min(served) >= 2, f"calls per replica: {served}"
