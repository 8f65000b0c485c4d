"""Real servers on free ports, started once per test session: every service and the gateway, over gRPC."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import httpx
import pytest

from deploy.local.stack import Stack, available_services, free_port, spawn, stop, wait_http_ok


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    services = available_services()
    names = ["gateway", "redis", *services, *(f"{s}-metrics" for s in services)]
    stack = Stack(
        ports={name: free_port() for name in names},
        log_dir=tmp_path_factory.mktemp("logs"),
        data_dir=tmp_path_factory.mktemp("redis"),
        services=services,
    )
    stack.extra_env = {
        "FACEPLANE_GATEWAY_MAX_UPLOAD_BYTES": str(4 * 1024 * 1024),
        "FACEPLANE_GATEWAY_MAX_PIXELS": str(30_000_000),
    }
    stack.start()
    yield stack
    stack.stop()


def _client(port: int) -> httpx.Client:
    return httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)


@pytest.fixture(scope="session")
def api(stack: Stack) -> Iterator[httpx.Client]:
    with _client(stack.ports["gateway"]) as client:
        yield client


@pytest.fixture(scope="session")
def degraded_api(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A second gateway on the same detector whose emotion and age/gender services are down (nothing listens at
    their addresses) and whose attributes service is not deployed at all."""
    port = free_port()
    env = {
        "FACEPLANE_GATEWAY_PORT": str(port),
        "FACEPLANE_GATEWAY_AUTH": "false",
        "FACEPLANE_GATEWAY_DETECTOR_URL": f"127.0.0.1:{stack.ports['detector']}",
        "FACEPLANE_GATEWAY_EMOTION_URL": f"127.0.0.1:{free_port()}",
        "FACEPLANE_GATEWAY_AGEGENDER_URL": f"127.0.0.1:{free_port()}",
        "FACEPLANE_GATEWAY_ANALYSIS_DEADLINE_S": "2",
    }
    proc = spawn([sys.executable, "-m", "gateway"], env, tmp_path_factory.mktemp("degraded") / "gateway.log")
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/healthz")
        with _client(port) as client:
            yield client
    finally:
        stop(proc)


@pytest.fixture(scope="session")
def detector_address(stack: Stack) -> str:
    return f"127.0.0.1:{stack.ports['detector']}"
