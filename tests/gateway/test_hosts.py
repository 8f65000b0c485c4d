"""A web page on another site cannot drive a keyless gateway through the developer's browser: requests naming
another `Host` (DNS rebinding) are refused, and so are writes and video streams from another `Origin` (CSRF)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from websocket import WebSocketBadStatusException, create_connection

from deploy.local.stack import Stack
from gateway.hosts import allowed_names, hostname
from tests import images
from tests.gateway.own_gateway import on_the_stack, own_gateway

# the CLI, websockets and raw HTTP need a gateway process listening on a port
pytestmark = pytest.mark.process

ATTACKER = "http://attacker.example"
ONE_FACE = images.encode(images.astronaut())


def enrol(api: httpx.Client, collection: str, headers: dict[str, str]) -> list[httpx.Response]:
    """The two writes of an enrolment: the subject, then its face."""
    subject = api.post(f"/v1/collections/{collection}/subjects", json={"subject_id": "victim"}, headers=headers)
    face = api.post(
        f"/v1/collections/{collection}/subjects/victim/faces", files={"image": ("a.jpg", ONE_FACE)}, headers=headers
    )
    return [subject, face]


def test_a_forged_host_cannot_enrol(api: httpx.Client) -> None:
    """DNS rebinding: the attacker's name resolves to 127.0.0.1, so the browser sends `Host: attacker.example`."""
    for r in enrol(api, "rebound", {"host": "attacker.example", "origin": ATTACKER}):
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_host", r.text
    assert api.get("/v1/collections/rebound/subjects/victim").status_code == 404
    assert api.get("/healthz", headers={"host": "attacker.example:8080"}).status_code == 400


def test_another_origin_cannot_enrol(api: httpx.Client) -> None:
    """CSRF: a page on attacker.example posts to the gateway by its real address."""
    for r in enrol(api, "forged", {"origin": ATTACKER}):
        assert r.status_code == 403 and r.json()["error"]["code"] == "cross_origin", r.text
    assert api.delete("/v1/collections/forged/subjects/victim", headers={"origin": "null"}).status_code == 403
    assert api.get("/v1/collections/forged/subjects/victim").status_code == 404


def test_the_gateways_own_pages_and_loopback_names_still_work(api: httpx.Client) -> None:
    own = str(api.base_url).rstrip("/")  # the demo's origin: http://127.0.0.1:<port>
    assert [r.status_code for r in enrol(api, "own-origin", {"origin": own})] == [201, 201]
    port = api.base_url.port
    for host in (f"localhost:{port}", f"[::1]:{port}", "127.0.0.1"):
        assert api.get("/healthz", headers={"host": host}).status_code == 200, host
    # reads from another origin are harmless: without CORS headers the page cannot see the answer
    assert api.get("/v1/collections/own-origin/subjects", headers={"origin": ATTACKER}).status_code == 200


def test_another_origin_cannot_open_the_video_stream(api: httpx.Client) -> None:
    url = str(api.base_url).replace("http://", "ws://").rstrip("/") + "/v1/stream"
    with pytest.raises(WebSocketBadStatusException) as refused:
        create_connection(url, origin=ATTACKER, timeout=30)
    assert refused.value.status_code == 403
    create_connection(url, timeout=30).close()  # the client's own origin (websocket-client sends the host)


@pytest.fixture(scope="module")
def any_host_gateway(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """ALLOWED_HOSTS=["*"], as the chart sets it (the Ingress decides which names reach the gateway)."""
    env = {**on_the_stack(stack, "detector", "embedder"), "FACEPLANE_GATEWAY_ALLOWED_HOSTS": '["*"]'}
    with own_gateway(env, tmp_path_factory.mktemp("any-host") / "gateway.log") as client:
        yield client


def test_any_host_still_refuses_writes_from_another_origin(any_host_gateway: httpx.Client) -> None:
    api = any_host_gateway
    assert api.get("/healthz", headers={"host": "faces.example.com"}).status_code == 200
    for r in enrol(api, "any-host", {"host": "faces.example.com", "origin": ATTACKER}):
        assert r.status_code == 403 and r.json()["error"]["code"] == "cross_origin", r.text
    same_site = {"host": "faces.example.com", "origin": "https://faces.example.com"}
    assert [r.status_code for r in enrol(api, "any-host", same_site)] == [201, 201]


def test_allowed_names_take_the_bind_address_unless_it_is_a_wildcard() -> None:
    assert allowed_names(["localhost"], "10.1.2.3") == {"localhost", "10.1.2.3"}
    assert allowed_names(["Faces.Example.com."], "0.0.0.0") == {"faces.example.com"}
    assert allowed_names(["[::1]"], "::") == {"::1"}
    assert hostname("[::1]:8080") == "::1" and hostname("LOCALHOST.:80") == "localhost"
    assert hostname("a:b") is None and hostname("user@host") is None and hostname("") is None
