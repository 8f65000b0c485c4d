"""Every feature of /v1/analyze from its real model, and /v1/verify, end to end through the gateway."""

from __future__ import annotations

import math

import httpx
import numpy as np
from PIL import Image

from services.detector.align import align_face
from services.runtime.modelrepo import load_model
from tests import images
from tests.services.conftest import MODEL_REPO

EMOTIONS = {"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"}
ATTRIBUTES = {"smiling", "eyeglasses", "wearing_hat", "bangs", "mustache", "no_beard", "blond_hair", "black_hair",
              "pale_skin", "blurry"}  # fmt: skip


def post(api: httpx.Client, path: str, **files: bytes) -> httpx.Response:
    return api.post(path, files={k: (f"{k}.jpg", v, "image/jpeg") for k, v in files.items()})


def analyze(api: httpx.Client, data: bytes, **params: str) -> httpx.Response:
    return api.post("/v1/analyze", files={"image": ("x.jpg", data, "image/jpeg")}, params=params)


def test_every_face_gets_every_default_feature(api: httpx.Client) -> None:
    r = analyze(api, images.encode(images.group_six()))
    assert r.status_code == 200, r.text
    faces = r.json()["faces"]
    assert len(faces) == 6
    for face in faces:
        assert "errors" not in face, face.get("errors")
        assert set(face["emotion"]["scores"]) == EMOTIONS
        assert face["emotion"]["label"] in EMOTIONS
        assert math.isclose(sum(face["emotion"]["scores"].values()), 1.0, abs_tol=0.01)
        assert 0 < face["age"]["value"] < 100
        assert face["gender"]["label"] in {"female", "male"}
        assert face["mask"]["label"] == "no_mask"
        assert set(face["attributes"]) == ATTRIBUTES
        assert all(0.0 <= p <= 1.0 for p in face["attributes"].values())
        assert "embedding" not in face


def test_smiling_faces_are_happy_and_smiling(api: httpx.Client) -> None:
    faces = analyze(api, images.encode(images.group_six()), features="emotion,attributes").json()["faces"]
    faces.sort(key=lambda f: f["box"]["x"])
    # t1.jpg left to right: the third and fourth faces laugh with open mouths.
    for face in faces[2:4]:
        assert face["emotion"]["label"] == "happy"
        assert face["attributes"]["smiling"] > 0.5


def test_embedding_is_a_unit_vector(api: httpx.Client) -> None:
    faces = analyze(api, images.encode(images.astronaut()), features="embedding").json()["faces"]
    vector = np.array(faces[0]["embedding"])
    assert vector.shape == (128,)
    assert abs(np.linalg.norm(vector) - 1.0) < 1e-4
    assert set(faces[0]) == {"box", "confidence", "landmarks", "embedding"}


def test_verify_same_person_and_different_people(api: httpx.Client) -> None:
    astronaut = images.astronaut()
    smaller = np.asarray(Image.fromarray(astronaut).resize((300, 300), Image.LANCZOS))[:, ::-1]  # mirrored, scaled
    same = post(api, "/v1/verify", image1=images.encode(astronaut), image2=images.encode(np.ascontiguousarray(smaller)))
    assert same.status_code == 200, same.text
    assert same.json()["match"] is True
    assert same.json()["similarity"] > same.json()["threshold"]
    assert len(same.json()["faces"]) == 2

    group = images.group_six()
    other = post(api, "/v1/verify", image1=images.encode(astronaut), image2=images.encode(group))
    assert other.status_code == 200
    assert other.json()["match"] is False
    assert other.json()["similarity"] < other.json()["threshold"]


def test_verify_errors(api: httpx.Client) -> None:
    face = images.encode(images.astronaut())
    missing = post(api, "/v1/verify", image1=face)
    assert missing.status_code == 422 and missing.json()["error"]["code"] == "missing_image"
    no_face = post(api, "/v1/verify", image1=face, image2=images.encode(images.no_face()))
    assert no_face.status_code == 422 and no_face.json()["error"]["code"] == "no_face"
    assert "image2" in no_face.json()["error"]["message"]
    broken = post(api, "/v1/verify", image1=face, image2=b"not an image")
    assert broken.status_code == 415


def test_skip_detection_analyses_a_pre_cropped_face(api: httpx.Client) -> None:
    # An aligned face as the README asks for it: dlib's chip framing (the embedder's template), 200 px.
    r = api.post("/v1/detect", files={"image": ("a.png", images.encode(images.astronaut()), "image/png")})
    marks = r.json()["faces"][0]["landmarks"]
    points = np.array([marks[k] for k in ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")])
    template = load_model(MODEL_REPO, "dlib_resnet").config.crop.template
    crop = align_face(images.astronaut(), points, 200, template=np.array(template))
    r = analyze(api, images.encode(crop), skip_detection="true", features="gender,emotion")
    assert r.status_code == 200, r.text
    (face,) = r.json()["faces"]
    assert face["gender"]["label"] == "female"
    assert face["emotion"]["label"] in EMOTIONS
