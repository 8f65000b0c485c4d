"""Real servers on free ports, started once per test session: the detector service and the gateway over gRPC."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from deploy.local.stack import Stack, free_port


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Detector + gateway; the analysis services are configured at addresses where nothing listens (down)."""
    ports = {name: free_port() for name in ("gateway", "redis", "detector", "detector-metrics", "emotion", "agegender")}
    log_dir = tmp_path_factory.mktemp("logs")
    stack = Stack(ports=ports, log_dir=log_dir, data_dir=tmp_path_factory.mktemp("redis"), services=["detector"])
    stack.extra_env = {
        "FACEPLANE_GATEWAY_EMOTION_URL": f"127.0.0.1:{ports['emotion']}",
        "FACEPLANE_GATEWAY_AGEGENDER_URL": f"127.0.0.1:{ports['agegender']}",
        "FACEPLANE_GATEWAY_MAX_UPLOAD_BYTES": str(4 * 1024 * 1024),
        "FACEPLANE_GATEWAY_MAX_PIXELS": str(30_000_000),
        "FACEPLANE_GATEWAY_ANALYSIS_DEADLINE_S": "2",
    }
    stack.start(with_redis=False)
    yield stack
    stack.stop()


@pytest.fixture(scope="session")
def api(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://127.0.0.1:{stack.ports['gateway']}", timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
def detector_address(stack: Stack) -> str:
    return f"127.0.0.1:{stack.ports['detector']}"
