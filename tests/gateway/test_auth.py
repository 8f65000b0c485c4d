"""API keys for real: a gateway with auth on (the default outside make run) beside the session's services and
Redis (tests/gateway/conftest.py); keys made with the `faceplane keys` command; scopes, collections, rate limits,
revocation, the key store's pool and round trips, the audit log, secrets kept out of the log."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import redis

from gateway.keys import CLIENT_NAME
from tests import images
from tests.gateway.api_keys import KEY_STORE_POOL_SIZE, bearer, keys_command, new_key, stream_url

ONE_FACE = images.encode(images.astronaut(), quality=90)


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

    url = stream_url(secure_api)
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


def key_store_connections(redis_url: str) -> list[dict]:
    """The keyed gateway's connections to its key store (its own database), as Redis lists them."""
    client = redis.Redis.from_url(redis_url)
    db = client.connection_pool.connection_kwargs.get("db", 0)
    return [c for c in client.client_list() if c["name"] == CLIENT_NAME and int(c["db"]) == db]


def test_300_requests_at_once_with_a_wrong_key_are_all_401(secure_api: httpx.Client, redis_url: str) -> None:
    wrong = {"Authorization": f"Bearer fp_{secrets.token_hex(6)}_{secrets.token_urlsafe(24)}"}

    async def burst() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=300, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=secure_api.base_url, limits=limits, timeout=60) as client:
            return await asyncio.gather(
                *(client.get("/v1/collections/any/subjects", headers=wrong) for _ in range(300))
            )

    answers = Counter((r.status_code, r.json()["error"]["code"]) for r in asyncio.run(burst()))
    assert answers == {(401, "invalid_api_key"): 300}
    # They waited for the pool's few connections (FACEPLANE_GATEWAY_KEY_STORE_POOL_SIZE) instead of opening more.
    assert 1 <= len(key_store_connections(redis_url)) <= KEY_STORE_POOL_SIZE


def key_store_commands(redis_url: str, request: Callable[[], object]) -> list[str]:
    """The commands the keyed gateway sent its key store while `request` ran, as Redis's MONITOR saw them (not
    the ones a script runs inside Redis: a script is one command, one round trip)."""
    client, sentinel = redis.Redis.from_url(redis_url), f"done-{secrets.token_hex(4)}"
    with client.monitor() as monitor:
        before = {c["addr"] for c in key_store_connections(redis_url)}
        request()
        gateway = before | {c["addr"] for c in key_store_connections(redis_url)}
        client.echo(sentinel)  # MONITOR shows commands in the order Redis ran them: all of the request's come first
        commands = []
        for event in monitor.listen():
            if event["command"] == f"ECHO {sentinel}":
                return commands
            if f"{event['client_address']}:{event['client_port']}" in gateway:
                commands.append(event["command"].split()[0])
    raise AssertionError("MONITOR ended early")


def test_an_admitted_request_costs_the_key_store_two_round_trips(secure_api: httpx.Client, redis_url: str) -> None:
    key = new_key(redis_url, scopes="read")

    def list_subjects() -> None:  # admitted: the embedder answers that there is no such collection
        r = secure_api.get("/v1/collections/trips/subjects", headers=bearer(key))
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"

    list_subjects()  # the scripts are loaded, a connection waits in the pool
    # One script finds the key, checks its scope and collection, takes a token and a concurrency slot; one command
    # gives the slot back. (It was 5 round trips: GET, GET, the token's script, MULTI…EXEC, DECR.)
    assert key_store_commands(redis_url, list_subjects) == ["EVALSHA", "ZREM"]
    wrong = {"Authorization": f"Bearer fp_{secrets.token_hex(6)}_{secrets.token_urlsafe(24)}"}
    assert key_store_commands(redis_url, lambda: secure_api.get("/v1/collections/trips/subjects", headers=wrong)) == [
        "EVALSHA"
    ]


def test_refused_biometric_writes_are_audited_too(secure_api: httpx.Client, redis_url: str) -> None:
    reader = new_key(redis_url, name="nosy", scopes="read")
    admin = new_key(redis_url, name="security", scopes="admin")
    vault = "/v1/collections/vault/subjects"
    r = secure_api.post(vault, json={"subject_id": "eve"}, headers=bearer(reader))
    assert r.status_code == 403
    r = secure_api.post(
        f"{vault}/eve/faces", files={"image": ("a.jpg", ONE_FACE, "image/jpeg")}, headers=bearer(reader)
    )
    assert r.status_code == 403
    assert secure_api.delete(f"{vault}/eve").status_code == 401
    forged = {"X-API-Key": f"fp_{secrets.token_hex(6)}_{secrets.token_urlsafe(24)}"}
    assert secure_api.delete(f"{vault}/eve/faces/f1", headers=forged).status_code == 401
    refused = secure_api.get("/v1/audit", params={"refused": "true", "count": 50}, headers=bearer(admin))
    mine = [e for e in refused.json()["entries"] if e.get("collection") == "vault"]
    assert [(e["action"], e["outcome"], e["key_id"]) for e in mine] == [
        ("delete_face", "invalid_api_key", ""),
        ("delete_subject", "unauthenticated", ""),
        ("enrol_face", "forbidden", reader["key_id"]),
        ("create_subject", "forbidden", reader["key_id"]),
    ]
    assert mine[0]["face_id"] == "f1" and all(e["subject_id"] == "eve" for e in mine[:3])
    assert all(len(json.dumps(e)) < 400 for e in mine)  # ids, the outcome, the client's address: never the image
    # Refused attempts are kept apart: a flood of them cannot push the writes that happened out of the log.
    writes = secure_api.get("/v1/audit", params={"count": 1000}, headers=bearer(admin)).json()["entries"]
    assert not [e for e in writes if e.get("collection") == "vault"]


def test_the_gateways_log_never_holds_a_key(secure_api: httpx.Client, redis_url: str, secure_gateway_log: Path) -> None:
    from websocket import create_connection

    key = new_key(redis_url, scopes="read")
    secret = key["api_key"]
    r = secure_api.get("/v1/collections/logged/subjects", params={"key": secret}, headers={"X-API-Key": secret})
    assert r.status_code == 404  # admitted; no such collection
    stream = create_connection(stream_url(secure_api, f"key={secret}&features=age"), timeout=60)
    try:
        stream.send_binary(ONE_FACE)
        assert len(json.loads(stream.recv())["faces"]) == 1
    finally:
        stream.close()
    log = secure_gateway_log.read_text()
    assert "/v1/stream?key=" in log and "/v1/collections/logged/subjects?key=" in log  # the lines are there
    assert secret not in log and secret.split("_", 2)[2] not in log  # their secrets are not
