"""The REST API end to end: a real gateway process → gRPC → a real detector process."""

from __future__ import annotations

import base64

import httpx
import numpy as np
import pytest

from deploy.local.stack import free_port
from services.detector.servicer import DetectorSettings
from services.runtime.modelrepo import read_config
from tests import images, payloads
from tests.gateway.own_gateway import on_the_stack, own_gateway

LANDMARKS = {"left_eye", "right_eye", "nose", "mouth_left", "mouth_right"}


def post_image(api: httpx.Client, path: str, data: bytes, **params: object) -> httpx.Response:
    return api.post(path, files={"image": ("photo.jpg", data, "image/jpeg")}, params=params)


def box_iou(box: dict, ref: tuple[float, float, float, float]) -> float:
    a = (box["x"], box["y"], box["x"] + box["width"], box["y"] + box["height"])
    x1, y1, x2, y2 = max(a[0], ref[0]), max(a[1], ref[1]), min(a[2], ref[2]), min(a[3], ref[3])
    inter = max(0, x2 - x1) * max(0, y2 - y1)
    return inter / (box["width"] * box["height"] + (ref[2] - ref[0]) * (ref[3] - ref[1]) - inter)


def test_detect_astronaut_multipart(api: httpx.Client) -> None:
    r = post_image(api, "/v1/detect", images.encode(images.astronaut()))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["image"] == {"width": 512, "height": 512}
    assert len(body["faces"]) == 1
    face = body["faces"][0]
    assert box_iou(face["box"], images.ASTRONAUT_FACE) > 0.5
    assert set(face["landmarks"]) == LANDMARKS
    assert 0.9 <= face["confidence"] <= 1.0


def test_detect_json_base64_and_raw_body_agree(api: httpx.Client) -> None:
    data = images.encode(images.astronaut(), "PNG")
    as_json = api.post("/v1/detect", json={"image": base64.b64encode(data).decode()})
    as_data_url = api.post("/v1/detect", json={"image": "data:image/png;base64," + base64.b64encode(data).decode()})
    raw = api.post("/v1/detect", content=data, headers={"content-type": "image/png"})
    assert as_json.status_code == as_data_url.status_code == raw.status_code == 200
    assert as_json.json() == as_data_url.json() == raw.json()
    assert len(as_json.json()["faces"]) == 1


def test_group_photo_and_max_faces(api: httpx.Client) -> None:
    group, count = images.group_of_ten()
    data = images.encode(group)
    faces = post_image(api, "/v1/detect", data).json()["faces"]
    assert len(faces) == count
    largest = post_image(api, "/v1/detect", data, max_faces=3).json()["faces"]
    assert len(largest) == 3
    area = sorted((f["box"]["width"] * f["box"]["height"] for f in faces), reverse=True)
    assert [f["box"]["width"] * f["box"]["height"] for f in largest] == area[:3]


def test_no_face(api: httpx.Client) -> None:
    r = post_image(api, "/v1/detect", images.encode(images.no_face()))
    assert r.status_code == 200 and r.json()["faces"] == []


def test_exif_rotated_photo_boxes_are_in_display_orientation(api: httpx.Client) -> None:
    body = post_image(api, "/v1/detect", payloads.exif_rotated_jpeg()).json()
    assert body["image"] == {"width": 512, "height": 512}
    assert box_iou(body["faces"][0]["box"], images.ASTRONAUT_FACE) > 0.5


def test_analyze_keeps_answering_when_analysis_services_are_down(degraded_api: httpx.Client) -> None:
    r = post_image(degraded_api, "/v1/analyze", images.encode(images.astronaut()), features="emotion,age,gender,mask")
    assert r.status_code == 200, r.text
    face = r.json()["faces"][0]
    assert box_iou(face["box"], images.ASTRONAUT_FACE) > 0.5
    assert set(face["errors"]) == {"emotion", "age", "gender", "mask"}
    assert "unavailable" in face["errors"]["emotion"]
    assert "not deployed" in face["errors"]["mask"]
    assert "emotion" not in face


def test_degraded_readiness(degraded_api: httpx.Client) -> None:
    ready = degraded_api.get("/readyz")
    assert ready.status_code == 200  # the detector, the one required service, is up
    assert ready.json() == {
        "status": "degraded",
        "services": {"detector": "SERVING", "emotion": "UNREACHABLE", "agegender": "UNREACHABLE"},
    }


def test_analyze_skip_detection_treats_the_image_as_one_face(api: httpx.Client) -> None:
    r = post_image(
        api, "/v1/analyze", images.encode(images.no_face()[:200, :200]), skip_detection="true", features="emotion"
    )
    assert r.status_code == 200, r.text
    (face,) = r.json()["faces"]
    assert face["box"] == {"x": 0, "y": 0, "width": 200, "height": 200}
    assert "landmarks" not in face  # null landmarks are left out of analyze answers


ASTRONAUT_JPEG = images.encode(images.astronaut())


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"files": {"image": ("x.jpg", b"not an image at all", "image/jpeg")}}, 415, "unsupported_image"),
        ({"files": {"image": ("x.jpg", payloads.truncated_jpeg(), "image/jpeg")}}, 422, "corrupt_image"),
        ({"files": {"image": ("x.jpg", b"", "image/jpeg")}}, 400, "empty_image"),
        ({"files": {"photo": ("x.jpg", ASTRONAUT_JPEG, "image/jpeg")}}, 422, "missing_image"),
        ({"data": {"image": "just text"}}, 415, "unsupported_media_type"),  # form-urlencoded
        (
            {"files": {"image": ("x.png", payloads.png_claiming_size(20_000, 20_000), "image/png")}},
            413,
            "image_too_large",
        ),
        ({"content": b"x" * (12 * 1024 * 1024), "headers": {"content-type": "image/jpeg"}}, 413, "payload_too_large"),
        ({"content": b"[" * 200_000, "headers": {"content-type": "application/json"}}, 400, "invalid_json"),
        ({"content": b"\xff" * (5 * 1024 * 1024), "headers": {"content-type": "image/jpeg"}}, 413, "image_too_large"),
        ({"content": b"", "headers": {"content-type": "image/jpeg"}}, 400, "empty_image"),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "invalid_json"),
        ({"json": {"image": "***"}}, 422, "invalid_base64"),
        ({"json": {"picture": "abc"}}, 422, "missing_image"),
        ({"json": ["image"]}, 422, "missing_image"),
        (
            {"content": b"--b\r\nbroken", "headers": {"content-type": "multipart/form-data; boundary=b"}},
            422,
            "missing_image",
        ),
        ({"content": ASTRONAUT_JPEG, "headers": {"content-type": "text/plain"}}, 415, "unsupported_media_type"),
    ],
)
def test_bad_input_gets_a_clear_4xx(api: httpx.Client, kwargs: dict, status: int, code: str) -> None:
    for path in ("/v1/detect", "/v1/analyze"):
        r = api.post(path, **kwargs)
        assert r.status_code == status, (path, r.text)
        assert r.json()["error"]["code"] == code
        assert r.json()["error"]["message"]


@pytest.mark.parametrize(
    "params",
    [
        {"min_confidence": "2"},
        {"min_confidence": "abc"},
        {"max_faces": "0"},
        {"max_faces": "-1"},
        {"features": "x-ray"},
        {"features": ","},
    ],
)
def test_bad_query_values_are_422(api: httpx.Client, params: dict) -> None:
    path = "/v1/analyze" if "features" in params else "/v1/detect"
    r = post_image(api, path, ASTRONAUT_JPEG, **params)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] in {"invalid_request", "invalid_features"}


def test_unknown_route_and_method_use_the_error_shape(api: httpx.Client) -> None:
    assert api.get("/v1/nope").json()["error"]["code"] == "not_found"
    r = api.get("/v1/detect")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/v1/detect", "POST"),
        ("TRACE", "/healthz", "GET"),
        ("PUT", "/v1/collections/c/subjects", "GET, POST"),  # two routes, one path
        ("POST", "/v1/collections/c/subjects/s", "GET, DELETE"),
        ("DELETE", "/demo/app.js", "GET, HEAD"),  # static files
    ],
)
def test_405_says_which_methods_the_path_takes(api: httpx.Client, method: str, path: str, allow: str) -> None:
    r = api.request(method, path)
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
    assert r.headers["allow"] == allow


BIG_INTEGER = "9" * 5000  # past Python's 4,300-digit limit for turning text into an int


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/detect", f'{{"image": {BIG_INTEGER}}}'),
        ("/v1/verify", f'{{"image1": "AAAA", "collection": {BIG_INTEGER}}}'),
        ("/v1/generate", f'{{"count": {BIG_INTEGER}}}'),
        ("/v1/collections/c/subjects", f'{{"subject_id": "s", "name": {BIG_INTEGER}}}'),
    ],
)
def test_json_with_a_huge_integer_is_invalid_json(api: httpx.Client, path: str, body: str) -> None:
    r = api.post(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_json"


def test_the_schema_says_what_the_gateway_enforces(api: httpx.Client) -> None:
    spec = api.get("/openapi.json").json()
    paths = spec["paths"]
    face = paths["/v1/collections/{collection}/subjects/{subject_id}/faces/{face_id}"]["delete"]
    assert {p["name"]: p["schema"]["pattern"] for p in face["parameters"]} == dict.fromkeys(
        ("collection", "subject_id", "face_id"), "^[A-Za-z0-9_.-]{1,64}$"
    )
    features = next(p for p in paths["/v1/analyze"]["post"]["parameters"] if p["name"] == "features")
    assert features["schema"]["pattern"].startswith("^(")
    assert "landmarks" not in spec["components"]["schemas"]["AnalyzedFace"].get("required", [])
    seed = spec["components"]["schemas"]["GenerateBody"]["properties"]["seed"]["anyOf"][0]
    assert seed == {"type": "integer", "minimum": 0, "exclusiveMaximum": 2**53}
    # ... and the gateway refuses what the schema refuses, with a 4xx of its own
    assert api.get("/v1/collections/a%20b/subjects").json()["error"]["code"] == "invalid_request"
    assert api.delete("/v1/collections/c/subjects/s/faces/f%0A").status_code == 422
    r = post_image(api, "/v1/analyze", ASTRONAUT_JPEG, features="")
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_features"
    assert post_image(api, "/v1/analyze", ASTRONAUT_JPEG, features="emotion, age").status_code == 422
    for body in ({"seed": False}, {"count": True}, {"count": "2"}, {"seed": 2.5}):
        assert api.post("/v1/generate", json=body).status_code == 422, body
    r = api.post("/v1/verify", files={"image1": ("a.jpg", ASTRONAUT_JPEG)}, data={"subject_id": "no spaces"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"


def test_health_readiness_and_metrics(api: httpx.Client) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}
    ready = api.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert set(ready.json()["services"].values()) == {"SERVING"}
    post_image(api, "/v1/detect", ASTRONAUT_JPEG)
    text = api.get("/metrics").text
    assert 'faceplane_http_request_seconds_count{method="POST",route="/v1/detect",status="200"}' in text
    assert 'faceplane_grpc_client_seconds_count{code="OK",method="Detect",service="detector"}' in text


def test_openapi_documents_the_contract(api: httpx.Client) -> None:
    spec = api.get("/openapi.json").json()
    detect = spec["paths"]["/v1/detect"]["post"]
    assert set(detect["requestBody"]["content"]) == {"multipart/form-data", "application/json"}
    assert {"200", "413", "415", "422", "504"} <= set(detect["responses"])
    assert api.get("/docs").status_code == 200


def test_without_a_detector_readiness_fails_and_detect_is_503(tmp_path) -> None:
    with own_gateway(
        {"FACEPLANE_GATEWAY_SERVICES__DETECTOR": f"127.0.0.1:{free_port()}"}, tmp_path / "gw.log"
    ) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json() == {"status": "not_ready", "services": {"detector": "UNREACHABLE"}}
        r = post_image(client, "/v1/detect", ASTRONAUT_JPEG)
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "detector_unavailable"


def test_a_detector_past_its_deadline_is_504(stack, tmp_path) -> None:
    """A deadline nobody can meet: gRPC gives up on the call (and cancels it on the detector) and the client gets
    504 `detector_timeout`, not the 503 of a detector that cannot be reached."""
    env = {**on_the_stack(stack, "detector"), "FACEPLANE_GATEWAY_DETECT_DEADLINE_S": "0.001"}
    with own_gateway(env, tmp_path / "gateway.log") as client:
        r = post_image(client, "/v1/detect", images.encode(images.group_of_ten()[0]))
        assert r.status_code == 504, r.text
        assert r.json()["error"]["code"] == "detector_timeout"


def test_a_streamed_body_over_the_limit_is_refused_while_streaming(api: httpx.Client) -> None:
    def chunks():  # no Content-Length: the gateway must count as the bytes arrive
        for _ in range(48):
            yield b"\xff" * (256 * 1024)

    for content_type in ("image/jpeg", "application/json"):
        r = api.post("/v1/detect", content=chunks(), headers={"content-type": content_type})
        assert r.status_code == 413, r.text
        assert r.json()["error"]["code"] == "payload_too_large"
    multipart = b"--b\r\nContent-Disposition: form-data; name=image; filename=x.jpg\r\n\r\n"
    r = api.post(
        "/v1/detect",
        content=iter([multipart, *chunks()]),
        headers={"content-type": "multipart/form-data; boundary=b"},
    )
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"


def test_extreme_aspect_ratios_are_answered(api: httpx.Client) -> None:
    for shape in ((1, 20_000, 3), (30_000, 1, 3), (1, 1, 3)):
        r = post_image(api, "/v1/detect", images.encode(np.zeros(shape, np.uint8), "PNG"))
        assert r.status_code == 200, r.text
        assert r.json()["faces"] == []


def test_min_confidence_zero_keeps_more_than_the_default(api: httpx.Client) -> None:
    group = images.encode(images.group_of_ten()[0])
    default = post_image(api, "/v1/detect", group).json()["faces"]
    everything = post_image(api, "/v1/detect", group, min_confidence=0).json()["faces"]
    assert len(everything) >= len(default) == 10
    detector = DetectorSettings()
    floor = read_config(detector.model_repo / detector.model).params["min_confidence"]  # the default detector's
    assert min(f["confidence"] for f in default) >= floor
