"""Every catalogue service inside the test process, for the fast tier: the real models behind real grpc.aio
servers on free loopback ports, all on one event loop in a thread of its own (the gateway's TestClient runs its
loop in another), and the gateway built by create_app around them. Only Redis, which the embedder's galleries
and the gateway's audit log need, is a process of its own."""

from __future__ import annotations

import asyncio
import importlib
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from deploy.local.stack import free_port, redis_command, spawn, stop, wait_tcp
from gateway.app import create_app
from gateway.settings import Settings
from services.runtime.server import ServiceServer
from services.runtime.settings import ServiceSettings


def settings_class(name: str) -> type[ServiceSettings]:
    """The one ServiceSettings subclass a service's servicer.py defines (its `__main__` runs the same)."""
    module = importlib.import_module(f"services.{name}.servicer")
    (cls,) = (
        c
        for c in vars(module).values()
        if isinstance(c, type) and issubclass(c, ServiceSettings) and c.__module__ == module.__name__
    )
    return cls


class InProcessServices:
    """`names` started as `python -m services.<name>` would start them, on `loop` (a thread's)."""

    def __init__(self, names: list[str], redis_url: str, **overrides: Any) -> None:
        self.names = names
        self.redis_url = redis_url
        self.overrides = overrides
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="services", daemon=True)
        self.servers: dict[str, ServiceServer] = {}

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=300)

    async def _start(self) -> None:
        self.loop.set_default_executor(ThreadPoolExecutor(max_workers=2, thread_name_prefix="inference"))
        for name in self.names:
            module = importlib.import_module(f"services.{name}.servicer")
            settings = settings_class(name)(port=free_port(), redis_url=self.redis_url, **self.overrides)
            server = ServiceServer(settings, module.build(settings))
            await server.start()
            self.servers[name] = server

    def start(self) -> dict[str, str]:
        self.thread.start()
        self._run(self._start())
        return {name: f"127.0.0.1:{server.port}" for name, server in self.servers.items()}

    async def _stop(self) -> None:
        for server in self.servers.values():
            await server.stop()
        rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]  # the batchers' collectors
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)

    def stop(self) -> None:
        self._run(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)


@contextmanager
def redis_server(data_dir: Path) -> Iterator[str]:
    port = free_port()
    proc = spawn(redis_command(port, data_dir), {}, data_dir / "redis.log")
    try:
        wait_tcp(port)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop(proc)


@contextmanager
def gateway_client(urls: dict[str, str], redis_url: str, **settings: Any) -> Iterator[TestClient]:
    """create_app around the given services; no API keys (as `make run`), unless settings say otherwise."""
    app = create_app(Settings(services={"detector": "", **urls}, redis_url=redis_url, auth=False, **settings))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield client
