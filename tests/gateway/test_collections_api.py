"""Galleries end to end: gateway → detector → embedder → a real Redis 8 vector index."""

from __future__ import annotations

import base64
import uuid

import httpx
import numpy as np
from PIL import Image

from tests import images


def collection() -> str:
    return f"c-{uuid.uuid4().hex[:12]}"


def upload(api: httpx.Client, path: str, data: bytes, **params: object) -> httpx.Response:
    return api.post(path, files={"image": ("x.jpg", data, "image/jpeg")}, params=params)


def collection_with_eileen(api: httpx.Client) -> str:
    """A new collection with one subject, "eileen", enrolled from the astronaut photo."""
    c = collection()
    assert api.post(f"/v1/collections/{c}/subjects", json={"subject_id": "eileen"}).status_code == 201
    assert (
        upload(api, f"/v1/collections/{c}/subjects/eileen/faces", images.encode(images.astronaut())).status_code == 201
    )
    return c


def astronaut_again() -> bytes:
    """The same woman in another picture: mirrored, smaller, recompressed."""
    small = Image.fromarray(images.astronaut()).resize((320, 320), Image.LANCZOS).transpose(Image.FLIP_LEFT_RIGHT)
    return images.encode(np.asarray(small), quality=80)


def test_enrol_identify_and_delete(api: httpx.Client) -> None:
    c = collection()
    assert api.post(f"/v1/collections/{c}/subjects", json={"subject_id": "eileen", "name": "Eileen"}).status_code == 201
    enrolled = upload(api, f"/v1/collections/{c}/subjects/eileen/faces", images.encode(images.astronaut()))
    assert enrolled.status_code == 201, enrolled.text
    face_id = enrolled.json()["face_id"]
    assert api.get(f"/v1/collections/{c}/subjects/eileen").json() == {
        "subject_id": "eileen",
        "name": "Eileen",
        "face_ids": [face_id],
    }

    found = upload(api, f"/v1/collections/{c}/identify", astronaut_again()).json()
    (face,) = found["faces"]
    assert [m["subject_id"] for m in face["matches"]] == ["eileen"]
    assert face["matches"][0]["name"] == "Eileen" and face["matches"][0]["similarity"] > 0.916

    # Six strangers: every face comes back, none forced onto the nearest subject.
    strangers = upload(api, f"/v1/collections/{c}/identify", images.encode(images.group_six()), top_k=3).json()
    assert len(strangers["faces"]) == 6
    assert all(f["matches"] == [] for f in strangers["faces"])

    assert api.delete(f"/v1/collections/{c}/subjects/eileen").status_code == 204
    assert api.get(f"/v1/collections/{c}/subjects/eileen").status_code == 404
    after = upload(api, f"/v1/collections/{c}/identify", astronaut_again()).json()
    assert after["faces"][0]["matches"] == []


def test_subject_conflicts_pages_and_face_deletion(api: httpx.Client) -> None:
    c = collection()
    for sid in ("a", "b", "c"):
        assert (
            api.post(f"/v1/collections/{c}/subjects", json={"subject_id": sid, "name": sid.upper()}).status_code == 201
        )
    again = api.post(f"/v1/collections/{c}/subjects", json={"subject_id": "a"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_exists"

    first = api.get(f"/v1/collections/{c}/subjects", params={"page_size": 2}).json()
    assert [s["subject_id"] for s in first["subjects"]] == ["a", "b"]
    second = api.get(f"/v1/collections/{c}/subjects", params={"page_size": 2, "page_token": first["next_page_token"]})
    assert [s["subject_id"] for s in second.json()["subjects"]] == ["c"] and second.json()["next_page_token"] is None

    face_id = upload(api, f"/v1/collections/{c}/subjects/a/faces", images.encode(images.astronaut())).json()["face_id"]
    assert api.delete(f"/v1/collections/{c}/subjects/a/faces/{face_id}").status_code == 204
    assert api.get(f"/v1/collections/{c}/subjects/a").json()["face_ids"] == []
    assert api.delete(f"/v1/collections/{c}/subjects/a/faces/{face_id}").status_code == 404


def test_enrolment_needs_exactly_one_face(api: httpx.Client) -> None:
    c = collection()
    api.post(f"/v1/collections/{c}/subjects", json={"subject_id": "p"})
    group = images.encode(images.group_six())
    several = upload(api, f"/v1/collections/{c}/subjects/p/faces", group)
    assert several.status_code == 422 and several.json()["error"]["code"] == "multiple_faces"
    largest = upload(api, f"/v1/collections/{c}/subjects/p/faces", group, allow_multiple="true")
    assert largest.status_code == 201
    none = upload(api, f"/v1/collections/{c}/subjects/p/faces", images.encode(images.no_face()))
    assert none.status_code == 422 and none.json()["error"]["code"] == "no_face"
    missing = upload(api, f"/v1/collections/{c}/subjects/nobody/faces", images.encode(images.astronaut()))
    assert missing.status_code == 404


def test_collections_are_isolated_and_ids_checked(api: httpx.Client) -> None:
    a, b = collection(), collection()
    for c in (a, b):
        api.post(f"/v1/collections/{c}/subjects", json={"subject_id": "same"})
    upload(api, f"/v1/collections/{a}/subjects/same/faces", images.encode(images.astronaut()))
    in_b = upload(api, f"/v1/collections/{b}/identify", astronaut_again()).json()
    assert in_b["faces"][0]["matches"] == []  # b's "same" has no faces; a's face never shows up here
    unknown = upload(api, f"/v1/collections/{collection()}/identify", astronaut_again())
    assert unknown.status_code == 404

    bad_body = api.post(f"/v1/collections/{a}/subjects", json={"subject_id": "../etc"})
    assert bad_body.status_code == 422
    bad_path = api.post("/v1/collections/bad%20id!/subjects", json={"subject_id": "x"})
    assert bad_path.status_code == 422
    long_id = api.get(f"/v1/collections/{'x' * 65}/subjects")
    assert long_id.status_code == 422


def test_verify_against_an_enrolled_subject(api: httpx.Client) -> None:
    c = collection_with_eileen(api)
    params = {"collection": c, "subject_id": "eileen"}
    same = api.post("/v1/verify", files={"image1": ("a.jpg", astronaut_again(), "image/jpeg")}, params=params)
    assert same.status_code == 200, same.text
    assert same.json()["match"] is True and len(same.json()["faces"]) == 1
    other = api.post(
        "/v1/verify", files={"image1": ("b.jpg", images.encode(images.group_six()), "image/jpeg")}, params=params
    )
    assert other.json()["match"] is False
    nobody = api.post(
        "/v1/verify",
        files={"image1": ("a.jpg", astronaut_again(), "image/jpeg")},
        params={**params, "subject_id": "nobody"},
    )
    assert nobody.status_code == 404
    half = api.post(
        "/v1/verify", files={"image1": ("a.jpg", astronaut_again(), "image/jpeg")}, params={"collection": c}
    )
    assert half.status_code == 422


def test_verify_subject_given_as_body_fields(api: httpx.Client) -> None:
    c = collection_with_eileen(api)
    fields = {"collection": c, "subject_id": "eileen"}
    as_form = api.post("/v1/verify", files={"image1": ("a.jpg", astronaut_again(), "image/jpeg")}, data=fields)
    assert as_form.status_code == 200, as_form.text
    assert as_form.json()["match"] is True
    as_json = api.post("/v1/verify", json={"image1": base64.b64encode(astronaut_again()).decode(), **fields})
    assert as_json.status_code == 200 and as_json.json()["match"] is True


def test_a_gallery_without_redis_degrades_readiness_and_answers_503(stack, tmp_path) -> None:
    import sys

    from deploy.local.stack import free_port, spawn, stop, wait_grpc_serving, wait_http_ok

    embedder_port, gateway_port = free_port(), free_port()
    embedder = spawn(
        [sys.executable, "-m", "services.embedder"],
        {
            "FACEPLANE_EMBEDDER_PORT": str(embedder_port),
            "FACEPLANE_EMBEDDER_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
            "FACEPLANE_EMBEDDER_REDIS_TIMEOUT_S": "1",
        },
        tmp_path / "embedder.log",
    )
    gateway = spawn(
        [sys.executable, "-m", "gateway"],
        {
            "FACEPLANE_GATEWAY_PORT": str(gateway_port),
            "FACEPLANE_GATEWAY_AUTH": "false",
            "FACEPLANE_GATEWAY_SERVICES__DETECTOR": f"127.0.0.1:{stack.ports['detector']}",
            "FACEPLANE_GATEWAY_SERVICES__EMBEDDER": f"127.0.0.1:{embedder_port}",
        },
        tmp_path / "gateway.log",
    )
    try:
        wait_grpc_serving(f"127.0.0.1:{embedder_port}")
        wait_http_ok(f"http://127.0.0.1:{gateway_port}/healthz")
        with httpx.Client(base_url=f"http://127.0.0.1:{gateway_port}", timeout=30) as client:
            ready = client.get("/readyz").json()
            assert ready["status"] == "degraded"
            assert ready["services"]["embedder"] == "SERVING"
            assert ready["services"]["embedder/gallery"] == "NOT_SERVING"
            r = client.post(f"/v1/collections/{collection()}/subjects", json={"subject_id": "x"})
            assert r.status_code == 503 and r.json()["error"]["code"] == "gallery_unavailable"
            same = client.post(
                "/v1/verify",
                files={
                    "image1": ("a.jpg", images.encode(images.astronaut()), "image/jpeg"),
                    "image2": ("b.jpg", astronaut_again(), "image/jpeg"),
                },
            )
            assert same.status_code == 200 and same.json()["match"] is True  # 1:1 needs no gallery
    finally:
        stop(gateway)
        stop(embedder)
