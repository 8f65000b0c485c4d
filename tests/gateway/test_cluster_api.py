"""POST /v1/cluster end to end: the astronaut's photos end in one cluster that none of six strangers joins, each
stranger pairs with their own mirror image, every face is answered once; bad input is refused with a code naming
the image; the route's body cap is its own; without the embedder the route says so."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from faceplane_client import FaceplaneClient
from faceplane_client.cli import parser, run
from tests import images
from tests.gateway.own_gateway import gateway_without, on_the_stack, own_gateway
from tests.inprocess import gateway_client


def astronaut_again() -> bytes:
    """The same woman in another picture: mirrored, smaller, recompressed."""
    small = Image.fromarray(images.astronaut()).resize((320, 320), Image.LANCZOS).transpose(Image.FLIP_LEFT_RIGHT)
    return images.encode(np.asarray(small), quality=80)


def cluster(api: httpx.Client, uploads: list[bytes], **params: object) -> httpx.Response:
    files = [("images", (f"{i}.jpg", data, "image/jpeg")) for i, data in enumerate(uploads)]
    return api.post("/v1/cluster", files=files, params=params)


def faces_detected(api: httpx.Client, data: bytes) -> int:
    r = api.post("/v1/detect", files={"image": ("x.jpg", data, "image/jpeg")})
    assert r.status_code == 200, r.text
    return len(r.json()["faces"])


def test_the_astronaut_is_one_cluster_and_strangers_stay_out(api: httpx.Client) -> None:
    uploads = [
        images.encode(images.astronaut()),
        images.encode(images.group_six()),
        astronaut_again(),
        images.encode(images.no_face()),
        images.encode(images.selfie()),
        images.encode(images.group_six()[:, ::-1].copy()),  # the six again, mirrored
    ]
    r = cluster(api, uploads)
    assert r.status_code == 200, r.text
    body = r.json()
    faces = [f for c in body["clusters"] for f in c["members"]] + body["noise"]
    # every detected face exactly once
    assert sorted(f["image"] for f in faces) == sorted(
        i for i, d in enumerate(uploads) for _ in range(faces_detected(api, d))
    )
    assert len({(f["image"], tuple(f["box"].values())) for f in faces}) == len(faces)
    (astronaut,) = [c for c in body["clusters"] if any(f["image"] == 0 for f in c["members"])]
    assert sorted(f["image"] for f in astronaut["members"]) == [0, 2, 4]
    assert not any(f["image"] == 1 for f in astronaut["members"])  # none of the six strangers joined her
    # each of the six with their mirror image, and nobody else
    width = images.group_six().shape[1]
    pairs = [c["members"] for c in body["clusters"] if c is not astronaut]
    assert len(pairs) == 6 and all([f["image"] for f in members] == [1, 5] for members in pairs)
    for face, mirrored in pairs:
        right = face["box"]["x"] + face["box"]["width"]
        assert abs(width - right - mirrored["box"]["x"]) < 10 and abs(face["box"]["y"] - mirrored["box"]["y"]) < 10
    assert [c["cluster_id"] for c in body["clusters"]] == list(range(len(body["clusters"])))
    assert all(len(c["members"]) >= 2 for c in body["clusters"])
    assert body["threshold"] == pytest.approx(0.916)


def test_the_cli_prints_each_face_with_its_cluster(api: httpx.Client, tmp_path: Path) -> None:
    photos = {"a.jpg": images.encode(images.astronaut()), "b.jpg": astronaut_again()}
    photos["group.jpg"] = images.encode(images.group_six())
    for name, data in photos.items():
        (tmp_path / name).write_bytes(data)
    client = FaceplaneClient()
    client._http.close()
    client._http = api  # the session's gateway, in either tier
    answer, text = run(parser().parse_args(["cluster", *(str(tmp_path / n) for n in photos)]), client)
    header, *rows = [line.split() for line in text.splitlines()]
    assert header == ["cluster", "image", "box"] and len(rows) == 8 and answer["clusters"]
    assert [(r[0], Path(r[1]).name) for r in rows[:2]] == [("0", "a.jpg"), ("0", "b.jpg")]
    # two of the six strangers are above 0.916 with each other (the threshold's false matches): a cluster or noise
    assert all(Path(r[1]).name == "group.jpg" and r[0] != "0" for r in rows[2:])


def test_a_threshold_of_one_leaves_every_face_in_noise(api: httpx.Client) -> None:
    r = cluster(api, [images.encode(images.astronaut()), astronaut_again()], threshold=1.0)
    assert r.status_code == 200, r.text
    assert r.json()["clusters"] == [] and len(r.json()["noise"]) == 2


def test_images_without_faces_give_an_empty_answer(api: httpx.Client) -> None:
    r = cluster(api, [images.encode(images.no_face())])
    assert r.status_code == 200, r.text
    assert r.json() == {"clusters": [], "noise": [], "threshold": pytest.approx(0.916)}


def test_no_images_is_422(api: httpx.Client) -> None:
    r = api.post("/v1/cluster", files={"image": ("a.jpg", astronaut_again(), "image/jpeg")})
    assert r.status_code == 422 and r.json()["error"]["code"] == "missing_image", r.text
    r = api.post("/v1/cluster", data={"images": "not a file"}, files={"other": ("a.jpg", b"x", "image/jpeg")})
    assert r.status_code == 422 and r.json()["error"]["code"] == "missing_image", r.text
    assert "image 0:" in r.json()["error"]["message"]
    r = api.post("/v1/cluster", json={"images": []})
    assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_media_type", r.text


def test_more_images_than_the_cap_is_413(api: httpx.Client) -> None:
    tiny = images.encode(np.zeros((1, 1, 3), np.uint8), "PNG")
    r = cluster(api, [tiny] * 501)  # the default cap, 500
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_many_images", r.text
    assert "500" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("bad", "status", "code"),
    [
        (b"not an image at all", 415, "unsupported_image"),
        (b"", 400, "empty_image"),
        (images.encode(images.astronaut())[:4000], 422, "corrupt_image"),  # found by the detector's decoder
    ],
    ids=["not-an-image", "empty", "truncated"],
)
def test_one_bad_image_fails_the_request_naming_its_index(
    api: httpx.Client, bad: bytes, status: int, code: str
) -> None:
    r = cluster(api, [images.encode(images.astronaut()), astronaut_again(), bad])
    assert r.status_code == status and r.json()["error"]["code"] == code, r.text
    assert r.json()["error"]["message"].startswith("image 2: ")


def streamed_image(megabytes: int) -> Iterator[bytes]:
    """A multipart body of one `images` file of `megabytes` MiB, without Content-Length."""
    yield b"--b\r\nContent-Disposition: form-data; name=images; filename=x.jpg\r\n\r\n"
    for _ in range(megabytes * 4):
        yield b"\xff" * (256 * 1024)
    yield b"\r\n--b--\r\n"


def test_the_cluster_route_has_a_body_cap_of_its_own(api: httpx.Client) -> None:
    """12 MiB is over the two-image cap of every other route, and under the cluster route's: its one image is then
    refused for its own size, not the body for its."""
    headers = {"content-type": "multipart/form-data; boundary=b"}
    verify = api.post("/v1/verify", content=streamed_image(12), headers=headers)
    assert verify.status_code == 413 and verify.json()["error"]["code"] == "payload_too_large", verify.text
    r = api.post("/v1/cluster", content=streamed_image(12), headers=headers)
    assert r.status_code == 413 and r.json()["error"]["code"] == "image_too_large", r.text
    assert r.json()["error"]["message"].startswith("image 0: ")


@pytest.fixture(scope="module")
def small_api(
    request: pytest.FixtureRequest, fast: bool, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    """A gateway of its own beside the session's services, with small cluster limits (2 images of 1 MiB, 2 faces)."""
    limits = {"cluster_max_images": 2, "cluster_max_faces": 2, "max_upload_bytes": 1024 * 1024}
    if fast:
        urls, redis_url = request.getfixturevalue("inprocess")
        with gateway_client(urls, redis_url, **limits) as client:
            yield client
        return
    stack = request.getfixturevalue("stack")
    env = on_the_stack(stack, *stack.services) | {f"FACEPLANE_GATEWAY_{k.upper()}": str(v) for k, v in limits.items()}
    with own_gateway(env, tmp_path_factory.mktemp("cluster") / "gateway.log") as client:
        yield client


def test_more_faces_than_the_cap_is_422(small_api: httpx.Client) -> None:
    r = cluster(small_api, [images.encode(images.group_six()[::2, ::2])])
    assert r.status_code == 422 and r.json()["error"]["code"] == "too_many_faces", r.text
    assert cluster(small_api, [images.encode(images.astronaut()), astronaut_again()]).status_code == 200


def test_a_body_over_the_cluster_cap_is_413(small_api: httpx.Client) -> None:
    r = small_api.post(
        "/v1/cluster", content=streamed_image(4), headers={"content-type": "multipart/form-data; boundary=b"}
    )
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large", r.text


@pytest.fixture
def api_without_embedder(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[httpx.Client]:
    yield from gateway_without(request, "embedder", tmp_path / "gateway.log")


def test_without_the_embedder_the_route_is_503(api_without_embedder: httpx.Client) -> None:
    r = cluster(api_without_embedder, [images.encode(images.astronaut())])
    assert r.status_code == 503 and r.json()["error"]["code"] == "embedder_not_configured", r.text
