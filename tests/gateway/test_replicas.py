"""A service URL naming several replicas: the gateway spreads its calls over all of them (gRPC round_robin)."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from deploy.local.stack import Stack, free_port, spawn, stop, wait_grpc_serving, wait_http_ok
from tests import images

pytestmark = pytest.mark.slow


def detect_calls(metrics_port: int) -> float:
    """Detect RPCs the replica has answered, from its Prometheus endpoint."""
    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
    pattern = r'faceplane_grpc_server_handling_seconds_count\{[^}]*method="Detect"[^}]*\} (\S+)'
    return sum(float(v) for v in re.findall(pattern, text))


@pytest.fixture(scope="module")
def two_replicas(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[int]]]:
    """A second detector beside the session's, and a gateway whose detector URL names both."""
    log_dir: Path = tmp_path_factory.mktemp("replicas")
    port, metrics_port, gateway_port = free_port(), free_port(), free_port()
    env = {"FACEPLANE_DETECTOR_PORT": str(port), "FACEPLANE_DETECTOR_METRICS_PORT": str(metrics_port)}
    procs = [spawn([sys.executable, "-m", "services.detector"], env, log_dir / "detector.log")]
    try:
        wait_grpc_serving(f"127.0.0.1:{port}")
        gateway_env = {
            "FACEPLANE_GATEWAY_PORT": str(gateway_port),
            "FACEPLANE_GATEWAY_AUTH": "false",
            "FACEPLANE_GATEWAY_DETECTOR_URL": f"ipv4:127.0.0.1:{stack.ports['detector']},127.0.0.1:{port}",
        }
        procs.append(spawn([sys.executable, "-m", "gateway"], gateway_env, log_dir / "gateway.log"))
        url = f"http://127.0.0.1:{gateway_port}"
        wait_http_ok(f"{url}/healthz")
        yield url, [stack.ports["detector-metrics"], metrics_port]
    finally:
        for proc in procs:
            stop(proc)


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
