"""Liveness end to end: `features=liveness` on /v1/analyze (a real photo is real, with a high score), and
`require_liveness=true` on /v1/verify and enrolment: the real photo passes, a face the liveness service takes for an
attack is refused 422 `spoof_detected` with its score and nothing enrolled, a bad value is refused, and without the
liveness service the routes say so. (Upstream's sample attacks are crops, not photos: the model and servicer tests
in tests/services/liveness take them; here a liveness service of its own with a strict THRESHOLD makes the real
photo's face an attack, to drive the refusal through the gateway.)"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import images
from tests.gateway.own_gateway import gateway_without
from tests.inprocess import InProcessServices, gateway_client

PHOTO = images.encode(images.astronaut())


def upload(api: httpx.Client, path: str, data: bytes, **params: object) -> httpx.Response:
    return api.post(path, files={"image": ("x.jpg", data, "image/jpeg")}, params=params)


def verify(api: httpx.Client, **params: object) -> httpx.Response:
    files = {"image1": ("a.jpg", PHOTO, "image/jpeg"), "image2": ("b.jpg", PHOTO, "image/jpeg")}
    return api.post("/v1/verify", files=files, params=params)


def subject(api: httpx.Client) -> str:
    c = f"l-{uuid.uuid4().hex[:12]}"
    assert api.post(f"/v1/collections/{c}/subjects", json={"subject_id": "eileen"}).status_code == 201
    return f"/v1/collections/{c}/subjects/eileen"


def test_analyze_gives_each_face_its_liveness(api: httpx.Client) -> None:
    answer = upload(api, "/v1/analyze", PHOTO, features="liveness")
    assert answer.status_code == 200, answer.text
    (face,) = answer.json()["faces"]
    assert face["liveness"]["label"] == "real" and 0.5 < face["liveness"]["score"] <= 1.0, face
    assert "emotion" not in face and not face.get("errors")  # only what was asked for
    assert "liveness" not in upload(api, "/v1/analyze", PHOTO).json()["faces"][0]  # not a default feature


def test_require_liveness_lets_a_real_face_through(api: httpx.Client) -> None:
    faces = f"{subject(api)}/faces"
    enrolled = upload(api, faces, PHOTO, require_liveness="true")
    assert enrolled.status_code == 201, enrolled.text
    assert api.get(faces.removesuffix("/faces")).json()["face_ids"] == [enrolled.json()["face_id"]]
    verified = verify(api, require_liveness="true")
    assert verified.status_code == 200 and verified.json()["match"], verified.text
    # With the quality check too: one Detect call cuts the embedder's crop (the quality service's too) and both
    # liveness crops, and each service gets its own.
    both = upload(api, faces, PHOTO, require_liveness="true", min_quality=0.5)
    assert both.status_code == 201, both.text


@pytest.mark.parametrize("value", ["maybe", "2", ""])
def test_require_liveness_must_be_a_boolean(api: httpx.Client, value: str) -> None:
    for answer in (
        upload(api, f"{subject(api)}/faces", PHOTO, require_liveness=value),
        verify(api, require_liveness=value),
    ):
        assert answer.status_code == 422 and answer.json()["error"]["code"] == "invalid_request", answer.text


@pytest.fixture(scope="module")
def strict_api(request: pytest.FixtureRequest, fast: bool) -> Iterator[httpx.Client]:
    """A gateway of its own beside the session's services whose liveness service (started here) takes every face
    scoring below 0.999 for an attack: the real photo's face then is one."""
    if fast:
        urls, redis_url = request.getfixturevalue("inprocess")
        token = ""
    else:
        stack = request.getfixturevalue("stack")
        urls = {s: f"127.0.0.1:{stack.ports[s]}" for s in stack.services}
        redis_url, token = stack.redis_url, stack.service_token
    strict = InProcessServices(["liveness"], redis_url, threshold=0.999)
    try:
        with gateway_client({**urls, **strict.start()}, redis_url, service_token=token) as client:
            yield client
    finally:
        strict.stop()


def test_a_face_taken_for_an_attack_is_refused_and_not_enrolled(strict_api: httpx.Client) -> None:
    faces = f"{subject(strict_api)}/faces"
    refused = upload(strict_api, faces, PHOTO, require_liveness="true")
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["code"] == "spoof_detected" and "liveness score 0." in error["message"], error
    assert "nothing was enrolled" in error["message"]
    assert strict_api.get(faces.removesuffix("/faces")).json()["face_ids"] == []
    compared = verify(strict_api, require_liveness="true")
    assert compared.status_code == 422 and compared.json()["error"]["code"] == "spoof_detected", compared.text
    assert "'image1'" in compared.json()["error"]["message"]
    assert upload(strict_api, faces, PHOTO).status_code == 201  # without require_liveness, no check
    assert verify(strict_api).status_code == 200


@pytest.fixture
def api_without_liveness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[httpx.Client]:
    yield from gateway_without(request, "liveness", tmp_path / "gateway.log")


def test_require_liveness_without_the_liveness_service_is_503(api_without_liveness: httpx.Client) -> None:
    faces = f"{subject(api_without_liveness)}/faces"
    for answer in (
        upload(api_without_liveness, faces, PHOTO, require_liveness="true"),
        verify(api_without_liveness, require_liveness="true"),
    ):
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"]["code"] == "liveness_not_configured", answer.text
    analysed = upload(api_without_liveness, "/v1/analyze", PHOTO, features="liveness")
    assert analysed.status_code == 200 and "liveness" in analysed.json()["faces"][0]["errors"]
