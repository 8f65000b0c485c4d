"""A gateway process of a test's own, beside the session's (other settings, other services), and a client for it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from deploy.local.stack import Stack, free_port, spawn, stop, wait_http_ok
from tests.inprocess import gateway_client


def on_the_stack(stack: Stack, *services: str) -> dict[str, str]:
    """The environment that points a gateway at some of the session stack's services and its Redis."""
    env = {f"FACEPLANE_GATEWAY_SERVICES__{s.upper()}": f"127.0.0.1:{stack.ports[s]}" for s in services}
    env["FACEPLANE_GATEWAY_REDIS_URL"] = stack.redis_url
    env["FACEPLANE_GATEWAY_SERVICE_TOKEN"] = stack.service_token
    return env


@contextmanager
def own_gateway(env: dict[str, str], log_path: Path) -> Iterator[httpx.Client]:
    """`python -m gateway` on a free port with `env` (keys off unless it says otherwise), until the block ends."""
    port = free_port()
    full_env = {"FACEPLANE_GATEWAY_PORT": str(port), "FACEPLANE_GATEWAY_AUTH": "false", **env}
    proc = spawn([sys.executable, "-m", "gateway"], full_env, log_path)
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/healthz")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            yield client
    finally:
        stop(proc)


def gateway_without(request: pytest.FixtureRequest, missing: str, log_path: Path) -> Iterator[httpx.Client]:
    """A gateway of its own beside the session's services (in-process in the fast tier, a process otherwise) with
    every service but `missing` deployed: what a route answers when its service is not."""
    if request.config.getoption("--fast"):
        urls, redis_url = request.getfixturevalue("inprocess")
        with gateway_client({k: v for k, v in urls.items() if k != missing}, redis_url) as client:
            yield client
        return
    stack = request.getfixturevalue("stack")
    with own_gateway(on_the_stack(stack, *(s for s in stack.services if s != missing)), log_path) as client:
        yield client
