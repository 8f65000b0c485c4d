"""The torchserve backend for real: TorchServe (Java) serving our .mar archives, and a second full stack whose
services all run their models there. Every answer must match the in-process ONNX Runtime stack's."""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from PIL import Image

from deploy.local.stack import Stack, available_services, free_port
from deploy.torchserve.archives import (
    DEFAULT_STORE,
    TorchServePorts,
    build_archives,
    model_files,
    start_torchserve,
    stop_torchserve,
)
from services.runtime.backends import BackendError, BackendOptions, create_backend
from services.runtime.backends.onnx import OnnxBackend
from tests import images
from tests.onnx_inputs import sample_inputs
from tests.services.conftest import MODEL_REPO

pytestmark = pytest.mark.slow
TOLERANCE = 1e-3


@pytest.fixture(scope="module")
def torchserve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """TorchServe with every model file of model-repo/, its gRPC inference address once all models answer."""
    build_archives(MODEL_REPO, DEFAULT_STORE)
    served = list(model_files(MODEL_REPO))
    ports = TorchServePorts.free()
    proc = start_torchserve(ports, DEFAULT_STORE, served, tmp_path_factory.mktemp("torchserve"))
    url = f"127.0.0.1:{ports.grpc_inference}"
    try:
        # Workers load in the background: wait until each model answers (a model still loading is UNAVAILABLE).
        options = BackendOptions(kind="torchserve", url=url, timeout_s=30, retries=0)
        deadline = time.monotonic() + 180
        for name, path in model_files(MODEL_REPO).items():
            backend = create_backend(options, path, name)
            while True:
                try:
                    backend.run(sample_inputs(path))
                    break
                except BackendError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
        yield url
    finally:
        stop_torchserve(proc)


def test_every_model_file_answers_as_onnx_runtime_does(torchserve: str) -> None:
    options = BackendOptions(kind="torchserve", url=torchserve)
    for name, path in model_files(MODEL_REPO).items():
        feeds = sample_inputs(path)
        expected = OnnxBackend(path).run(feeds)
        got = create_backend(options, path, name).run(feeds)
        assert set(got) == set(expected), name
        for key, value in expected.items():
            assert np.abs(got[key] - value).max() <= TOLERANCE * max(1.0, float(np.abs(value).max())), (name, key)


def test_a_model_the_server_does_not_have_is_a_backend_error(torchserve: str) -> None:
    path = MODEL_REPO / "emotion_minixception" / "model.onnx"
    backend = create_backend(BackendOptions(kind="torchserve", url=torchserve, retries=0), path, "no-such-model")
    with pytest.raises(BackendError, match="no-such-model"):
        backend.run(sample_inputs(path))


def test_a_server_that_is_down_is_a_backend_error_after_the_retries() -> None:
    path = MODEL_REPO / "emotion_minixception" / "model.onnx"
    options = BackendOptions(kind="torchserve", url=f"127.0.0.1:{free_port()}", timeout_s=2, retries=1)
    with pytest.raises(BackendError, match="UNAVAILABLE"):
        create_backend(options, path, "emotion_minixception-model").run(sample_inputs(path))


@pytest.fixture(scope="module")
def torchserve_api(torchserve: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A second gateway and set of services, every one of them with backend torchserve."""
    services = available_services()
    names = ["gateway", "redis", *services]
    stack = Stack(
        ports={name: free_port() for name in names},
        log_dir=tmp_path_factory.mktemp("ts-logs"),
        data_dir=tmp_path_factory.mktemp("ts-redis"),
        services=services,
    )
    for service in services:
        stack.extra_env[f"FACEPLANE_{service.upper()}_BACKEND"] = "torchserve"
        stack.extra_env[f"FACEPLANE_{service.upper()}_BACKEND_URL"] = torchserve
    stack.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{stack.ports['gateway']}", timeout=120) as client:
            yield client
    finally:
        stack.stop()


def analyze(client: httpx.Client) -> list[dict]:
    r = client.post(
        "/v1/analyze",
        files={"image": ("g.jpg", images.encode(images.group_six()), "image/jpeg")},
        params={"features": "emotion,age,gender,mask,attributes,embedding"},
    )
    assert r.status_code == 200, r.text
    assert not r.json().get("errors"), r.json()["errors"]
    return r.json()["faces"]


def test_every_service_answers_through_torchserve_as_in_process(
    api: httpx.Client, torchserve_api: httpx.Client
) -> None:
    ours, theirs = analyze(api), analyze(torchserve_api)
    assert len(ours) == len(theirs) == 6
    for a, b in zip(ours, theirs, strict=True):
        assert np.allclose(list(a["box"].values()), list(b["box"].values()), atol=0.05)
        assert a["emotion"]["label"] == b["emotion"]["label"]
        assert (
            abs(a["emotion"]["scores"][a["emotion"]["label"]] - b["emotion"]["scores"][a["emotion"]["label"]])
            <= TOLERANCE
        )
        assert (
            a["gender"]["label"] == b["gender"]["label"]
            and abs(a["gender"]["score"] - b["gender"]["score"]) <= TOLERANCE
        )
        assert abs(a["age"]["value"] - b["age"]["value"]) <= 0.01
        assert a["mask"]["label"] == b["mask"]["label"]
        for name, value in a["attributes"].items():
            assert abs(value - b["attributes"][name]) <= TOLERANCE, name
        assert np.abs(np.array(a["embedding"]) - np.array(b["embedding"])).max() <= TOLERANCE


def test_the_generator_makes_the_same_faces_through_torchserve(api: httpx.Client, torchserve_api: httpx.Client) -> None:
    def faces(client: httpx.Client) -> list[np.ndarray]:
        r = client.post("/v1/generate", json={"count": 2, "seed": 7})
        assert r.status_code == 200, r.text
        return [np.asarray(Image.open(io.BytesIO(base64.b64decode(s)))).astype(int) for s in r.json()["images"]]

    for a, b in zip(faces(api), faces(torchserve_api), strict=True):
        assert np.abs(a - b).max() <= 1
