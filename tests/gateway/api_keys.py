"""Keys for the keyed gateway's tests, made as an operator makes them: with the `faceplane keys` command."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx

# The keyed gateway's pool to the key store: far fewer connections than the requests a test sends at once.
KEY_STORE_POOL_SIZE = 4


def keys_command(redis_url: str, *args: str) -> dict:
    command = shutil.which("faceplane", path=str(Path(sys.executable).parent))
    assert command
    result = subprocess.run([command, "--json", "keys", "--redis-url", redis_url, *args], capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def new_key(redis_url: str, **options: str) -> dict:
    args = ["create", "--name", options.pop("name", "test")]
    for name, value in options.items():
        args += [f"--{name}", value]
    return keys_command(redis_url, *args)


def bearer(key: dict) -> dict[str, str]:
    return {"Authorization": f"Bearer {key['api_key']}"}


def stream_url(api: httpx.Client, query: str = "") -> str:
    return str(api.base_url).replace("http://", "ws://").rstrip("/") + "/v1/stream" + (f"?{query}" if query else "")
