"""Real servers on free ports, started once per test session: every service and the gateway, over gRPC.

`pytest --fast` (`make test-fast`) is the fast tier: `api` is then the gateway built in this process by create_app
(FastAPI's TestClient) over every catalogue service started in this process on real grpc.aio servers
(tests/inprocess.py), and the tests that need processes of their own (the `stack`, other gateways, a browser,
model servers: tests/deploy, or marked slow) are left out.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import httpx
import pytest

from deploy.local.stack import Stack, available_services, free_port, spawn, stop, wait_http_ok
from services.catalogue import BY_NAME
from tests.inprocess import InProcessServices, gateway_client, redis_server

# The session gateway's limits, in both tiers (some tests send images between these and the defaults).
GATEWAY_LIMITS = {"max_upload_bytes": 4 * 1024 * 1024, "max_pixels": 30_000_000}
# Fixtures that start processes of their own: a test needing one is not in the fast tier.
PROCESS_FIXTURES = {"stack", "degraded_api", "secure_api", "browser"}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--fast", action="store_true", help="the fast tier: in-process services and gateway")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--fast"):
        return
    slow = [
        item
        for item in items
        if PROCESS_FIXTURES & set(getattr(item, "fixturenames", ()))
        or item.get_closest_marker("slow")
        or item.get_closest_marker("process")
        or "tests/deploy/" in item.nodeid
    ]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if item not in slow]


@pytest.fixture(scope="session")
def fast(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--fast"))


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
    stack.extra_env = {f"FACEPLANE_GATEWAY_{k.upper()}": str(v) for k, v in GATEWAY_LIMITS.items()}
    stack.start()
    yield stack
    stack.stop()


def _client(port: int) -> httpx.Client:
    return httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)


@pytest.fixture(scope="session")
def inprocess(fast: bool, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], str]]:
    """The fast tier's services: (name → host:port, the Redis URL)."""
    with redis_server(tmp_path_factory.mktemp("redis")) as redis_url:
        services = InProcessServices(list(BY_NAME), redis_url)
        try:
            yield services.start(), redis_url
        finally:
            services.stop()


@pytest.fixture(scope="session")
def api(request: pytest.FixtureRequest, fast: bool) -> Iterator[httpx.Client]:
    if fast:
        urls, redis_url = request.getfixturevalue("inprocess")
        with gateway_client(urls, redis_url, **GATEWAY_LIMITS) as client:
            yield client
        return
    stack: Stack = request.getfixturevalue("stack")
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
        "FACEPLANE_GATEWAY_SERVICES__DETECTOR": f"127.0.0.1:{stack.ports['detector']}",
        "FACEPLANE_GATEWAY_SERVICES__EMOTION": f"127.0.0.1:{free_port()}",
        "FACEPLANE_GATEWAY_SERVICES__AGEGENDER": f"127.0.0.1:{free_port()}",
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
def detector_address(request: pytest.FixtureRequest, fast: bool) -> str:
    if fast:
        return request.getfixturevalue("inprocess")[0]["detector"]
    return f"127.0.0.1:{request.getfixturevalue('stack').ports['detector']}"
