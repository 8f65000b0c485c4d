"""Open-set identification through the gateway (an embedder with FACEPLANE_EMBEDDER_IDENTIFY_FPIR=0.01; it is
opt-in): the decision grows with the gallery, so a stranger stays unmatched; an explicit threshold still decides
alone; bad parameters are refused.

The growing gallery uses the developer face data (`../shared/datasets`, or FACEPLANE_DATA: AT&T and Big Bang
Theory people, one photo each); skipped where that data is absent. The stranger is the astronaut of tests/images.py,
who is in neither set.
"""

from __future__ import annotations

import io
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from deploy.local.stack import Stack, free_port, spawn, stop, wait_grpc_serving
from tests import images
from tests.gateway.own_gateway import on_the_stack, own_gateway

DATA = Path(os.environ.get("FACEPLANE_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "datasets"))
PEOPLE = DATA / "verification"


def photo_bytes(path: Path) -> bytes:
    """JPEG and PNG as they are; AT&T's PGM as PNG (the gateway takes photo formats)."""
    if path.suffix.lower() != ".pgm":
        return path.read_bytes()
    buffer = io.BytesIO()
    Image.open(path).convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def first_photos() -> list[tuple[str, Path]]:
    """(subject id, photo): the first photo of each AT&T and BBT person, 48 people."""
    found = []
    for name in ("faceapi_js_bbt", "att_faces"):
        for person in sorted(p for p in (PEOPLE / name).iterdir() if p.is_dir()):
            files = sorted(f for f in person.iterdir() if f.suffix.lower() in {".jpg", ".png", ".pgm"})
            found.append((f"{name}.{person.name}", files[0]))
    return found


def enrol(api: httpx.Client, c: str, subject: str, data: bytes) -> None:
    assert api.post(f"/v1/collections/{c}/subjects", json={"subject_id": subject}).status_code == 201
    reply = api.post(f"/v1/collections/{c}/subjects/{subject}/faces", files={"image": ("x", data, "image/jpeg")})
    assert reply.status_code == 201, reply.text


def identify(api: httpx.Client, c: str, data: bytes, **params: object) -> dict[str, Any]:
    reply = api.post(f"/v1/collections/{c}/identify", files={"image": ("x", data, "image/jpeg")}, params=params)
    assert reply.status_code == 200, reply.text
    return reply.json()


@pytest.fixture(scope="module")
def open_set_api(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """An embedder of its own with the open-set decision on (FPIR 1%), on the session's Redis and detector, and a
    gateway in front of both."""
    logs = tmp_path_factory.mktemp("open-set")
    port = free_port()
    env = {
        "FACEPLANE_EMBEDDER_PORT": str(port),
        "FACEPLANE_EMBEDDER_REDIS_URL": stack.redis_url,
        "FACEPLANE_EMBEDDER_AUTH_TOKEN": stack.service_token,
        "FACEPLANE_EMBEDDER_IDENTIFY_FPIR": "0.01",
    }
    embedder = spawn([sys.executable, "-m", "services.embedder"], env, logs / "embedder.log")
    try:
        wait_grpc_serving(f"127.0.0.1:{port}", 120)
        gateway_env = {**on_the_stack(stack, "detector"), "FACEPLANE_GATEWAY_SERVICES__EMBEDDER": f"127.0.0.1:{port}"}
        with own_gateway(gateway_env, logs / "gateway.log") as client:
            yield client
    finally:
        stop(embedder)


@pytest.mark.slow
@pytest.mark.skipif(not PEOPLE.is_dir(), reason=f"developer face data not found at {PEOPLE}")
def test_a_stranger_stays_unmatched_as_the_gallery_grows(open_set_api: httpx.Client) -> None:
    api = open_set_api
    c = f"open-{uuid.uuid4().hex[:8]}"
    knn = sorted((PEOPLE / "face_recognition_knn" / "train").glob("*/*.jpg"))[:2]
    people = first_photos() + [(f"knn.{p.parent.name}.{p.stem}", p) for p in knn]  # 50 people
    stranger = images.encode(images.astronaut())
    thresholds = []
    enrolled = 0
    for size in (5, 50):
        for subject, path in people[enrolled:size]:
            enrol(api, c, subject, photo_bytes(path))
        enrolled = size
        reply = identify(api, c, stranger, top_k=5)
        assert reply["gallery_faces"] == size
        assert reply["faces"] and reply["faces"][0]["matches"] == []
        thresholds.append(reply["threshold"])
        # An enrolled photo still finds its own subject, improbable as a false match.
        subject, path = people[0]
        [match] = identify(api, c, photo_bytes(path))["faces"][0]["matches"]
        assert match["subject_id"] == subject and match["false_match_probability"] < 0.01
    assert thresholds[0] < thresholds[1]

    # An explicit threshold decides alone: at -1 the stranger gets the nearest subjects, each with the
    # (high) chance that a stranger scores that much in a gallery of 50.
    loose = identify(api, c, stranger, top_k=3, threshold=-1.0)
    assert loose["threshold"] == -1.0 and len(loose["faces"][0]["matches"]) == 3
    assert all(m["similarity"] < thresholds[1] for m in loose["faces"][0]["matches"])
    assert all(0.0 <= m["false_match_probability"] <= 1.0 for m in loose["faces"][0]["matches"])


def test_identify_refuses_out_of_range_parameters(api: httpx.Client) -> None:
    c = f"open-{uuid.uuid4().hex[:8]}"
    face = images.encode(images.astronaut())
    for params in ({"top_k": 0}, {"top_k": 101}, {"threshold": 1.5}, {"threshold": -1.01}, {"threshold": "x"}):
        reply = api.post(f"/v1/collections/{c}/identify", files={"image": ("x", face, "image/jpeg")}, params=params)
        assert reply.status_code == 422, (params, reply.text)
