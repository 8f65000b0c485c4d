"""What the model-server backend tests (and bench/model_servers.py) share: each server on loopback with our
models, every model file against ONNX Runtime, the error cases, and a second full stack on the server whose answers
must match the in-process stack's."""

from __future__ import annotations

import base64
import contextlib
import io
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from deploy.kserve.models import DEFAULT_REPOSITORY, start_mlserver, write_repository
from deploy.local.stack import Stack, available_services, free_port, stop
from deploy.tfserving.models import DEFAULT_BASE, build_model_base, start_standin
from deploy.torchserve.archives import DEFAULT_STORE, TorchServePorts, build_archives, start_torchserve
from services.runtime.backends import BackendError, BackendOptions, create_backend
from services.runtime.backends.onnx import OnnxBackend
from services.runtime.modelrepo import served_files
from tests import images
from tests.onnx_inputs import sample_inputs
from tests.services.conftest import MODEL_REPO

TOLERANCE = 1e-3
EMOTION = MODEL_REPO / "emotion_minixception" / "model.onnx"  # the small model the error tests call


def wait_until_every_model_answers(
    options: BackendOptions, files: dict[str, Path] | None = None, timeout_s: float = 180
) -> None:
    """Model servers load in the background; a model still loading answers UNAVAILABLE or NOT_FOUND."""
    deadline = time.monotonic() + timeout_s
    for name, path in (files or served_files(MODEL_REPO)).items():
        backend = create_backend(options, path, name)
        while True:
            try:
                backend.run(sample_inputs(path))
                break
            except BackendError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)


@contextlib.contextmanager
def model_server(kind: str, work: Path, files: dict[str, Path] | None = None) -> Iterator[str]:
    """The model server a backend `kind` speaks to, on loopback with our models (TorchServe loads only `files`,
    default all); its gRPC address once every one of `files` answers, stopped afterwards."""
    files = files or served_files(MODEL_REPO)
    if kind == "torchserve":
        build_archives(MODEL_REPO, DEFAULT_STORE)
        ports = TorchServePorts.free()
        proc, port = start_torchserve(ports, DEFAULT_STORE, list(files), work), ports.grpc_inference
    elif kind == "tfserving":
        build_model_base(MODEL_REPO, DEFAULT_BASE)
        port = free_port()
        proc = start_standin(DEFAULT_BASE, port, work / "tfserving.log")
    elif kind == "kserve_v2":
        write_repository(MODEL_REPO, DEFAULT_REPOSITORY)
        port = free_port()
        proc = start_mlserver(DEFAULT_REPOSITORY, port, free_port(), free_port(), work / "mlserver.log")
    else:
        raise ValueError(f"no model server for backend {kind!r}")
    url = f"127.0.0.1:{port}"
    try:
        wait_until_every_model_answers(BackendOptions(kind=kind, url=url, timeout_s=30, retries=0), files)
        yield url
    finally:
        stop(proc)


def assert_every_model_file_matches_onnx_runtime(options: BackendOptions) -> None:
    for name, path in served_files(MODEL_REPO).items():
        feeds = sample_inputs(path)
        expected = OnnxBackend(path).run(feeds)
        got = create_backend(options, path, name).run(feeds)
        assert set(got) == set(expected), name
        for key, value in expected.items():
            assert got[key].shape == value.shape and got[key].dtype == value.dtype, (name, key)
            assert np.abs(got[key] - value).max() <= TOLERANCE * max(1.0, float(np.abs(value).max())), (name, key)


def assert_an_unknown_model_is_a_backend_error(kind: str, url: str, pattern: str = "no-such-model") -> None:
    backend = create_backend(BackendOptions(kind=kind, url=url, retries=0), EMOTION, "no-such-model")
    with pytest.raises(BackendError, match=pattern):
        backend.run(sample_inputs(EMOTION))


def assert_a_wrong_shape_is_a_backend_error_and_the_server_lives_on(kind: str, url: str) -> None:
    backend = create_backend(BackendOptions(kind=kind, url=url, retries=0), EMOTION, "emotion_minixception-model")
    with pytest.raises(BackendError, match="INVALID_ARGUMENT"):
        backend.run({"input": np.zeros((1, 1, 32, 32), np.float32)})
    assert backend.run(sample_inputs(EMOTION))["probabilities"].shape == (2, 7)


def assert_a_server_that_is_down_is_unavailable_after_the_retries(kind: str) -> None:
    options = BackendOptions(kind=kind, url=f"127.0.0.1:{free_port()}", timeout_s=2, retries=1)
    with pytest.raises(BackendError, match="UNAVAILABLE"):
        create_backend(options, EMOTION, "emotion_minixception-model").run(sample_inputs(EMOTION))


def stack_on(kind: str, url: str, log_dir: Path, data_dir: Path) -> Iterator[httpx.Client]:
    """A second gateway and set of services, every one of them with `backend = kind` at `url`, on the float
    models; `stack_on("onnx", "", …)` is the in-process reference they are compared with."""
    services = available_services()
    names = ["gateway", "redis", *services]
    stack = Stack(ports={name: free_port() for name in names}, log_dir=log_dir, data_dir=data_dir, services=services)
    for service in services:
        stack.extra_env[f"FACEPLANE_{service.upper()}_BACKEND"] = kind
        stack.extra_env[f"FACEPLANE_{service.upper()}_BACKEND_URL"] = url
        # The float models, which every backend runs (the int8 variants run on ONNX Runtime in-process only).
        stack.extra_env[f"FACEPLANE_{service.upper()}_INT8"] = "false"
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


def assert_same_analysis(api: httpx.Client, other: httpx.Client, tolerance: float = TOLERANCE) -> float:
    """Same faces, same labels, and every score, age/100 and embedding value within `tolerance`; returns the
    largest difference seen."""
    ours, theirs = analyze(api), analyze(other)
    assert len(ours) == len(theirs) == 6
    worst = 0.0
    for a, b in zip(ours, theirs, strict=True):
        assert np.allclose(list(a["box"].values()), list(b["box"].values()), atol=0.05)
        for feature in ("emotion", "gender", "mask"):
            assert a[feature]["label"] == b[feature]["label"], feature
        pairs = [(a["emotion"]["scores"][k], b["emotion"]["scores"][k]) for k in a["emotion"]["scores"]]
        pairs += [(a[f]["score"], b[f]["score"]) for f in ("gender", "mask")]
        pairs += [(a["age"]["value"] / 100, b["age"]["value"] / 100)]
        pairs += [(value, b["attributes"][name]) for name, value in a["attributes"].items()]
        pairs += list(zip(a["embedding"], b["embedding"], strict=True))
        worst = max(worst, max(abs(x - y) for x, y in pairs))
    assert worst <= tolerance, worst
    return worst


def assert_same_generated_faces(api: httpx.Client, other: httpx.Client) -> None:
    def faces(client: httpx.Client) -> list[np.ndarray]:
        r = client.post("/v1/generate", json={"count": 2, "seed": 7})
        assert r.status_code == 200, r.text
        return [np.asarray(Image.open(io.BytesIO(base64.b64decode(s)))).astype(int) for s in r.json()["images"]]

    for a, b in zip(faces(api), faces(other), strict=True):
        assert np.abs(a - b).max() <= 1
