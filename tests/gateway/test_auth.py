"""API keys for real: a gateway with auth on (the default outside make run) beside the session's services and
Redis; keys made with the `faceplane keys` command; scopes, collections, rate limits, revocation, the audit log."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from deploy.local.stack import Stack, free_port, spawn, stop, wait_http_ok
from tests import images

ONE_FACE = images.encode(images.astronaut(), quality=90)


@pytest.fixture(scope="module")
def redis_url(stack: Stack) -> str:
    return f"redis://127.0.0.1:{stack.ports['redis']}/0"


@pytest.fixture(scope="module")
def secure_api(stack: Stack, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    port = free_port()
    env = {
        "FACEPLANE_GATEWAY_PORT": str(port),
        "FACEPLANE_GATEWAY_REDIS_URL": redis_url,
        **{f"FACEPLANE_GATEWAY_{s.upper()}_URL": f"127.0.0.1:{stack.ports[s]}" for s in stack.services},
    }  # no FACEPLANE_GATEWAY_AUTH: on by default
    proc = spawn([sys.executable, "-m", "gateway"], env, tmp_path_factory.mktemp("secure") / "gateway.log")
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/healthz")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            yield client
    finally:
        stop(proc)


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


def detect(api: httpx.Client, headers: dict[str, str]) -> httpx.Response:
    return api.post("/v1/detect", files={"image": ("a.jpg", ONE_FACE, "image/jpeg")}, headers=headers)


def test_without_a_valid_key_the_api_says_401(secure_api: httpx.Client) -> None:
    r = detect(secure_api, {})
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"
    r = detect(secure_api, {"Authorization": "Bearer fp_nope_nope"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert secure_api.get("/healthz").status_code == 200 and secure_api.get("/readyz").status_code == 200


def test_scopes_and_collections_are_enforced(secure_api: httpx.Client, redis_url: str) -> None:
    reader = new_key(redis_url, scopes="read")
    assert detect(secure_api, bearer(reader)).status_code == 200
    r = secure_api.post("/v1/collections/staff/subjects", json={"subject_id": "x"}, headers=bearer(reader))
    assert r.status_code == 403 and "enrol" in r.json()["error"]["message"]
    staff = new_key(redis_url, scopes="read,enrol", collections="staff")
    assert (
        secure_api.post("/v1/collections/staff/subjects", json={"subject_id": "kim"}, headers=bearer(staff)).status_code
        == 201
    )
    r = secure_api.post(
        "/v1/collections/guests/subjects", json={"subject_id": "kim"}, headers={"X-API-Key": staff["api_key"]}
    )
    assert r.status_code == 403 and "guests" in r.json()["error"]["message"]
    r = secure_api.get("/v1/audit", headers=bearer(staff))
    assert r.status_code == 403


def test_the_rate_limit_answers_429_with_retry_after(secure_api: httpx.Client, redis_url: str) -> None:
    key = new_key(redis_url, scopes="read", rate="0.2", burst="2")
    codes = [secure_api.post("/v1/generate", json={"count": 1}, headers=bearer(key)).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    r = secure_api.post("/v1/generate", json={"count": 1}, headers=bearer(key))
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(r.headers["retry-after"]) <= 5


def test_a_revoked_key_stops_working(secure_api: httpx.Client, redis_url: str) -> None:
    key = new_key(redis_url, scopes="read")
    assert detect(secure_api, bearer(key)).status_code == 200
    keys_command(redis_url, "revoke", key["key_id"])
    assert detect(secure_api, bearer(key)).status_code == 401
    listed = {k["key_id"]: k for k in keys_command(redis_url, "list")}
    assert listed[key["key_id"]]["revoked"] is True


def test_keys_are_hashed_at_rest(redis_url: str) -> None:
    key = new_key(redis_url, scopes="read")
    client = redis.Redis.from_url(redis_url)
    stored = b"".join(client.dump(k) or b"" for k in client.scan_iter(match="fp:auth:*"))
    assert key["api_key"].encode() not in stored
    assert key["api_key"].split("_")[2].encode() not in stored


def test_biometric_writes_are_audited_without_images(secure_api: httpx.Client, redis_url: str) -> None:
    writer = new_key(redis_url, name="hr-system", scopes="read,enrol", collections="audited")
    admin = new_key(redis_url, name="security", scopes="admin")
    headers = bearer(writer)
    assert (
        secure_api.post("/v1/collections/audited/subjects", json={"subject_id": "ana"}, headers=headers).status_code
        == 201
    )
    r = secure_api.post(
        "/v1/collections/audited/subjects/ana/faces",
        files={"image": ("a.jpg", ONE_FACE, "image/jpeg")},
        headers=headers,
    )
    assert r.status_code == 201
    face_id = r.json()["face_id"]
    assert (
        secure_api.delete(f"/v1/collections/audited/subjects/ana/faces/{face_id}", headers=headers).status_code == 204
    )
    assert secure_api.delete("/v1/collections/audited/subjects/ana", headers=headers).status_code == 204
    entries = secure_api.get("/v1/audit", params={"count": 20}, headers=bearer(admin)).json()["entries"]
    mine = [e for e in entries if e["key_id"] == writer["key_id"]]
    assert [e["action"] for e in mine] == ["delete_subject", "delete_face", "enrol_face", "create_subject"]
    assert mine[1]["face_id"] == face_id and all(e["collection"] == "audited" for e in mine)
    assert all(len(json.dumps(e)) < 400 for e in mine)  # ids and times, never image data


def test_the_video_stream_wants_a_key_too(secure_api: httpx.Client, redis_url: str) -> None:
    from websocket import create_connection

    url = str(secure_api.base_url).replace("http://", "ws://").rstrip("/") + "/v1/stream"
    refused = create_connection(url, timeout=30)
    try:
        assert json.loads(refused.recv())["error"]["code"] == "unauthenticated"
    finally:
        refused.close()
    key = new_key(redis_url, scopes="read")
    stream = create_connection(f"{url}?key={key['api_key']}&features=age", timeout=60)  # browsers send no headers
    try:
        stream.send_binary(ONE_FACE)
        assert len(json.loads(stream.recv())["faces"]) == 1
    finally:
        stream.close()
