"""Anonymisation: our own recognition no longer matches the person; format, size and orientation are kept."""

from __future__ import annotations

import io
import uuid

import httpx
from PIL import Image

from tests import images, payloads


def anonymize(api: httpx.Client, data: bytes, content_type: str = "image/jpeg", **params: str) -> httpx.Response:
    return api.post("/v1/anonymize", files={"image": ("x", data, content_type)}, params=params)


def test_a_blurred_face_is_no_longer_identified(api: httpx.Client) -> None:
    c = f"anon-{uuid.uuid4().hex[:8]}"
    api.post(f"/v1/collections/{c}/subjects", json={"subject_id": "eileen"})
    original = images.encode(images.astronaut())
    assert (
        api.post(
            f"/v1/collections/{c}/subjects/eileen/faces", files={"image": ("a.jpg", original, "image/jpeg")}
        ).status_code
        == 201
    )
    before = api.post(f"/v1/collections/{c}/identify", files={"image": ("a.jpg", original, "image/jpeg")}).json()
    assert before["faces"][0]["matches"][0]["subject_id"] == "eileen"  # the control: recognised before

    r = anonymize(api, original, method="blur")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/jpeg" and r.headers["x-faces-anonymized"] == "1"
    assert Image.open(io.BytesIO(r.content)).size == (512, 512)
    after = api.post(f"/v1/collections/{c}/identify", files={"image": ("b.jpg", r.content, "image/jpeg")}).json()
    assert all(face["matches"] == [] for face in after["faces"])


def test_group_png_stays_png_and_every_face_is_counted(api: httpx.Client) -> None:
    r = anonymize(api, images.encode(images.group_six(), "PNG"), "image/png", method="blur")
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/png" and r.headers["x-faces-anonymized"] == "6"
    assert Image.open(io.BytesIO(r.content)).size == (1280, 886)


def test_exif_rotated_photo_comes_back_upright(api: httpx.Client) -> None:
    r = anonymize(api, payloads.exif_rotated_jpeg(), method="blur")
    assert r.status_code == 200 and r.headers["x-faces-anonymized"] == "1"
    assert Image.open(io.BytesIO(r.content)).size == (512, 512)


def test_bad_input(api: httpx.Client) -> None:
    assert anonymize(api, b"no image", method="blur").status_code == 415
    assert anonymize(api, images.encode(images.astronaut()), method="paint").status_code == 422


def test_generate_is_reproducible_by_seed(api: httpx.Client) -> None:
    import base64

    first = api.post("/v1/generate", json={"count": 3, "seed": 42})
    assert first.status_code == 200, first.text
    again = api.post("/v1/generate", json={"count": 3, "seed": 42}).json()
    assert first.json() == again and again["seed"] == 42 and len(again["images"]) == 3
    assert Image.open(io.BytesIO(base64.b64decode(again["images"][0]))).size == (64, 64)
    fresh = api.post("/v1/generate", json={"count": 1}).json()
    replay = api.post("/v1/generate", json={"count": 1, "seed": fresh["seed"]}).json()
    assert replay["images"] == fresh["images"]
    for bad in ({"count": 0}, {"count": 65}, {"count": 1, "seed": -1}, {"count": "x"}):
        r = api.post("/v1/generate", json=bad)
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"


def test_a_generated_face_replaces_the_person(api: httpx.Client) -> None:
    c = f"anon-{uuid.uuid4().hex[:8]}"
    api.post(f"/v1/collections/{c}/subjects", json={"subject_id": "eileen"})
    original = images.encode(images.astronaut())
    api.post(f"/v1/collections/{c}/subjects/eileen/faces", files={"image": ("a.jpg", original, "image/jpeg")})
    r = anonymize(api, original)  # method=generate is the default
    assert r.status_code == 200, r.text
    assert r.headers["x-faces-anonymized"] == "1"
    after = api.post(f"/v1/collections/{c}/identify", files={"image": ("b.jpg", r.content, "image/jpeg")}).json()
    assert all(face["matches"] == [] for face in after["faces"])
