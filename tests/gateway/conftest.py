"""A gateway with API keys on (the default outside make run), beside the session's services and Redis."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, sync_playwright

from deploy.local.stack import Stack
from tests.gateway.api_keys import KEY_STORE_POOL_SIZE
from tests.gateway.own_gateway import on_the_stack, own_gateway

# The keyed gateway's key store: its own database of the session's Redis, so that its connections can be told
# from those of the session's keyless gateway (which writes the audit log with the same client name).
KEY_STORE_DB = 1


@pytest.fixture(scope="session")
def redis_url(stack: Stack) -> str:
    return stack.redis_url.rsplit("/", 1)[0] + f"/{KEY_STORE_DB}"


@pytest.fixture(scope="session")
def secure_gateway_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("secure") / "gateway.log"


@pytest.fixture(scope="session")
def secure_api(stack: Stack, redis_url: str, secure_gateway_log: Path) -> Iterator[httpx.Client]:
    env = {
        **on_the_stack(stack, *stack.services),
        "FACEPLANE_GATEWAY_AUTH": "true",  # the default outside make run
        "FACEPLANE_GATEWAY_REDIS_URL": redis_url,
        "FACEPLANE_GATEWAY_KEY_STORE_POOL_SIZE": str(KEY_STORE_POOL_SIZE),
    }
    with own_gateway(env, secure_gateway_log) as client:
        yield client


def chromium_path() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("no Chromium: apt-get install chromium (make test installs it: deploy/local/debian-packages.sh)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """The system's Chromium, headless, driven by Playwright; a fake camera (its test pattern) and no permission
    prompt, for the demo's live mode."""
    with sync_playwright() as p:
        args = ["--no-sandbox", "--disable-background-networking", "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream"]  # fmt: skip
        browser = p.chromium.launch(executable_path=chromium_path(), args=args)
        yield browser
        browser.close()
