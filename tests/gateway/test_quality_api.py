"""Face quality end to end: `features=quality` on /v1/analyze, and enrolment's `min_quality` (a blurred photo is
refused, the sharp one enrolled; bad values are refused; without the quality service the route says so)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import cv2
import httpx
import pytest

from tests import images
from tests.gateway.own_gateway import gateway_without

SHARP = images.encode(images.astronaut())
BLURRED = images.encode(cv2.GaussianBlur(images.astronaut(), (0, 0), 6))


def upload(api: httpx.Client, path: str, data: bytes, **params: object) -> httpx.Response:
    return api.post(path, files={"image": ("x.jpg", data, "image/jpeg")}, params=params)


def subject(api: httpx.Client) -> str:
    c = f"q-{uuid.uuid4().hex[:12]}"
    assert api.post(f"/v1/collections/{c}/subjects", json={"subject_id": "eileen"}).status_code == 201
    return f"/v1/collections/{c}/subjects/eileen"


def test_analyze_gives_each_face_its_quality(api: httpx.Client) -> None:
    sharp = upload(api, "/v1/analyze", SHARP, features="quality")
    blurred = upload(api, "/v1/analyze", BLURRED, features="quality")
    assert sharp.status_code == 200 and blurred.status_code == 200, (sharp.text, blurred.text)
    good, bad = sharp.json()["faces"][0]["quality"], blurred.json()["faces"][0]["quality"]
    assert set(good) == {"score", "sharpness", "brightness"}
    assert all(0.0 <= v <= 1.0 for v in (*good.values(), *bad.values()))
    assert good["score"] > bad["score"] + 0.1 and good["sharpness"] > bad["sharpness"]
    assert "emotion" not in sharp.json()["faces"][0]  # only what was asked for


def test_enrolment_refuses_a_face_below_min_quality(api: httpx.Client) -> None:
    faces = f"{subject(api)}/faces"
    refused = upload(api, faces, BLURRED, min_quality=0.8)
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["code"] == "low_quality" and "quality score 0." in error["message"]
    assert api.get(faces.removesuffix("/faces")).json()["face_ids"] == []  # nothing enrolled
    accepted = upload(api, faces, SHARP, min_quality=0.8)
    assert accepted.status_code == 201, accepted.text
    assert upload(api, faces, BLURRED).status_code == 201  # without min_quality, no check


@pytest.mark.parametrize("value", ["1.5", "-0.1", "good", "nan"])
def test_min_quality_must_be_a_number_in_0_1(api: httpx.Client, value: str) -> None:
    answer = upload(api, f"{subject(api)}/faces", SHARP, min_quality=value)
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "invalid_request", answer.text


@pytest.fixture
def api_without_quality(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[httpx.Client]:
    yield from gateway_without(request, "quality", tmp_path / "gateway.log")


def test_min_quality_without_the_quality_service_is_503(api_without_quality: httpx.Client) -> None:
    answer = upload(api_without_quality, f"{subject(api_without_quality)}/faces", SHARP, min_quality=0.5)
    assert answer.status_code == 503 and answer.json()["error"]["code"] == "quality_not_configured", answer.text
    analysed = upload(api_without_quality, "/v1/analyze", SHARP, features="quality")
    assert analysed.status_code == 200 and "quality" in analysed.json()["faces"][0]["errors"]
