"""The tfserving backend: our models exported as SavedModels and served by TF Serving's PredictionService API.

TF Serving's binary cannot be installed here, so the server is our stand-in (deploy/tfserving/server.py), built on
tensorflow-serving-api's own stubs and TensorFlow; the backend speaks to it through our separately generated subset
of the protos. Every answer must match ONNX Runtime's, model by model and through a second full stack."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from tfserving_grpc import tensor_pb2

from deploy.local.stack import REPO_ROOT
from deploy.tfserving.models import DEFAULT_BASE, QUIET_TF, tf_python
from services.runtime.backends import BackendError, BackendOptions
from services.runtime.backends.tfserving import from_tensor_proto, to_tensor_proto
from services.runtime.modelrepo import served_files
from tests.deploy.model_servers import (
    assert_a_server_that_is_down_is_unavailable_after_the_retries,
    assert_a_wrong_shape_is_a_backend_error_and_the_server_lives_on,
    assert_an_unknown_model_is_a_backend_error,
    assert_every_model_file_matches_onnx_runtime,
    assert_same_analysis,
    assert_same_generated_faces,
    model_server,
    stack_on,
)
from tests.services.conftest import MODEL_REPO

BASE = DEFAULT_BASE  # where model_server("tfserving") exports


@pytest.fixture(scope="module")
def tfserving(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The stand-in serving a SavedModel of every model file of model-repo/; its address."""
    with model_server("tfserving", tmp_path_factory.mktemp("tfserving")) as url:
        yield url


@pytest.mark.slow
def test_every_model_file_answers_as_onnx_runtime_does(tfserving: str) -> None:
    assert_every_model_file_matches_onnx_runtime(BackendOptions(kind="tfserving", url=tfserving))


@pytest.mark.slow
def test_a_model_the_server_does_not_have_is_a_backend_error(tfserving: str) -> None:
    assert_an_unknown_model_is_a_backend_error("tfserving", tfserving, r"NOT_FOUND.*no-such-model")


@pytest.mark.slow
def test_a_tensor_of_the_wrong_shape_is_a_backend_error_and_the_server_lives_on(tfserving: str) -> None:
    assert_a_wrong_shape_is_a_backend_error_and_the_server_lives_on("tfserving", tfserving)


@pytest.mark.slow
def test_the_model_config_file_is_one_tf_serving_reads(tfserving: str) -> None:
    read = (
        "import sys; from google.protobuf import text_format; "
        "from tensorflow_serving.config.model_server_config_pb2 import ModelServerConfig; "
        "config = text_format.Parse(open(sys.argv[1]).read(), ModelServerConfig()); "
        "print(' '.join(f'{c.name}={c.base_path}' for c in config.model_config_list.config))"
    )
    result = subprocess.run([str(tf_python()), "-c", read, str(BASE / "models.config")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    served = dict(item.split("=") for item in result.stdout.split())
    assert served == {name: f"/models/{name}" for name in served_files(MODEL_REPO)}
    assert all((BASE / name / "1" / "saved_model.pb").exists() for name in served)


def test_a_server_that_is_down_is_a_backend_error_after_the_retries() -> None:
    assert_a_server_that_is_down_is_unavailable_after_the_retries("tfserving")


def test_tensors_survive_the_round_trip_in_every_type_we_send() -> None:
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float16, np.float64, np.uint8, np.int32, np.int64, np.bool_):
        value = (rng.standard_normal((2, 3, 4)) * 50).astype(dtype)
        back = from_tensor_proto(tensor_pb2.TensorProto.FromString(to_tensor_proto(value).SerializeToString()))
        assert back.dtype == value.dtype and np.array_equal(back, value)


def test_typed_value_lists_are_read_as_tf_make_tensor_proto_writes_them() -> None:
    shape = tensor_pb2.TensorShapeProto(
        dim=[tensor_pb2.TensorShapeProto.Dim(size=2), tensor_pb2.TensorShapeProto.Dim(size=2)]
    )
    listed = tensor_pb2.TensorProto(dtype=tensor_pb2.DT_FLOAT, tensor_shape=shape, float_val=[1, 2, 3, 4])
    assert from_tensor_proto(listed).tolist() == [[1, 2], [3, 4]]
    filled = tensor_pb2.TensorProto(dtype=tensor_pb2.DT_INT64, tensor_shape=shape, int64_val=[7])
    assert from_tensor_proto(filled).tolist() == [[7, 7], [7, 7]]
    half = tensor_pb2.TensorProto(
        dtype=tensor_pb2.DT_HALF, tensor_shape=shape, half_val=[int(np.float16(1.5).view(np.uint16))]
    )
    assert from_tensor_proto(half).dtype == np.float16 and from_tensor_proto(half)[1, 1] == 1.5


def test_each_operator_translates_as_onnx_defines_it_or_is_refused() -> None:
    """tests/deploy/tf_op_cases.py in the TensorFlow environment: one-operator graphs against ONNX's reference
    implementation (within 1e-4), and the cases the exporter must refuse."""
    args = [str(tf_python()), "-m", "tests.deploy.tf_op_cases"]
    result = subprocess.run(args, cwd=REPO_ROOT, env={**os.environ, **QUIET_TF}, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    cases = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(cases) >= 30
    failed = [f"{c['case']}: {c['detail']}" for c in cases if not c["ok"]]
    assert not failed, failed


def test_bytes_that_do_not_fit_the_shape_are_a_backend_error() -> None:
    proto = to_tensor_proto(np.zeros((2, 3), np.float32))
    proto.tensor_content = proto.tensor_content[:-1]
    with pytest.raises(BackendError, match="23 bytes"):
        from_tensor_proto(proto)


def test_the_exporter_refuses_an_operator_it_does_not_translate(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Erf", ["x"], ["y"])],
        "erf",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, tmp_path / "erf.onnx")
    args = [
        str(tf_python()),
        "-m",
        "deploy.tfserving.export_savedmodel",
        str(tmp_path / "out"),
        f"erf={tmp_path / 'erf.onnx'}",
    ]
    result = subprocess.run(args, cwd=REPO_ROOT, env={**os.environ, **QUIET_TF}, capture_output=True, text=True)
    assert result.returncode != 0
    assert "no TensorFlow translation for: Erf" in result.stderr
    assert not (tmp_path / "out" / "erf").exists() or not any((tmp_path / "out" / "erf").rglob("saved_model.pb"))


@pytest.fixture(scope="module")
def tfserving_api(tfserving: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    yield from stack_on("tfserving", tfserving, tmp_path_factory.mktemp("tfs-logs"), tmp_path_factory.mktemp("tfs-db"))


@pytest.mark.slow
def test_every_service_answers_through_tfserving_as_in_process(
    float_api: httpx.Client, tfserving_api: httpx.Client
) -> None:
    # Each model matches ONNX Runtime to 7e-5 of its output scale or better; through the whole pipeline
    # TensorFlow's float differences in the detector carry on through landmarks and alignment into every crop:
    # 0.0017 at most when measured.
    worst = assert_same_analysis(float_api, tfserving_api, tolerance=0.003)
    print(f"largest score difference through TF Serving: {worst:.5f}")


@pytest.mark.slow
def test_the_generator_makes_the_same_faces_through_tfserving(api: httpx.Client, tfserving_api: httpx.Client) -> None:
    assert_same_generated_faces(api, tfserving_api)
