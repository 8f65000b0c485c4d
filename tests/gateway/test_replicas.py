"""A service URL naming several replicas: the gateway spreads its calls over all of them (gRPC round_robin)."""

from __future__ import annotations

import re
import time
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
def two_replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Two detectors and a gateway, started as `make run REPLICAS=detector=2` starts them."""
    log_dir: Path = tmp_path_factory.mktemp("replicas")
    names = ["gateway", "detector", "detector-metrics", "prometheus"]
    ports = {n: free_port() for n in names}
    stack = Stack(ports=ports, log_dir=log_dir, data_dir=log_dir, services=["detector"], replicas={"detector": 2})
    stack.start(with_redis=False)
    try:
        yield stack
    finally:
        stack.stop()


def replica_metrics_ports(stack: Stack) -> list[int]:
    return [stack.ports[f"{name}-metrics"] for name in stack.instances("detector")]


def test_calls_are_spread_over_every_replica(two_replicas: Stack) -> None:
    url, metrics_ports = two_replicas.gateway_urls()[0], replica_metrics_ports(two_replicas)
    before = [detect_calls(p) for p in metrics_ports]
    data = images.encode(images.astronaut())
    with httpx.Client(base_url=url, timeout=60) as client:
        for _ in range(8):
            r = client.post("/v1/detect", files={"image": ("a.jpg", data, "image/jpeg")})
            assert r.status_code == 200 and len(r.json()["faces"]) == 1
    served = [detect_calls(p) - b for p, b in zip(metrics_ports, before, strict=True)]
    assert sum(served) == 8
    assert min(served) >= 2, f"calls per replica: {served}"


def test_prometheus_scrapes_every_replica(two_replicas: Stack) -> None:
    """`make run PROMETHEUS=1 REPLICAS=detector=2`: Prometheus finds both detectors and the gateway up."""
    two_replicas.start_prometheus()
    expected = {f"127.0.0.1:{p}" for p in replica_metrics_ports(two_replicas)}
    expected.add(f"127.0.0.1:{two_replicas.ports['gateway']}")
    api = f"http://127.0.0.1:{two_replicas.ports['prometheus']}/api/v1/targets"
    deadline, up = time.monotonic() + 60, set()
    while time.monotonic() < deadline and up != expected:
        try:
            targets = httpx.get(api, timeout=5).json()["data"]["activeTargets"]
        except httpx.HTTPError:  # not answering yet
            targets = []
        up = {t["labels"]["instance"] for t in targets if t["health"] == "up"}
        time.sleep(0.5)
    assert up == expected
