"""The kserve_v2 backend (Open Inference Protocol over gRPC) against a real server of that protocol: MLServer
1.7.1 with our ONNX runtime. Every answer must match the in-process ONNX Runtime stack's."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from kserve_grpc import grpc_service_pb2 as oip

from deploy.kserve.models import (
    MLSERVER_ENV,
    write_triton_repository,
)
from services.runtime.backends import BackendError, BackendOptions
from services.runtime.backends.kserve import output_array
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


@pytest.fixture(scope="module")
def mlserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """MLServer with every model file of model-repo/ under our ONNX Runtime model class; its address."""
    with model_server("kserve_v2", tmp_path_factory.mktemp("mlserver")) as url:
        yield url


@pytest.mark.slow
def test_every_model_file_answers_as_onnx_runtime_does(mlserver: str) -> None:
    assert_every_model_file_matches_onnx_runtime(BackendOptions(kind="kserve_v2", url=mlserver))


@pytest.mark.slow
def test_a_model_the_server_does_not_have_is_a_backend_error(mlserver: str) -> None:
    assert_an_unknown_model_is_a_backend_error("kserve_v2", mlserver, r"NOT_FOUND.*no-such-model")


@pytest.mark.slow
def test_a_tensor_of_the_wrong_shape_is_a_backend_error_and_the_server_lives_on(mlserver: str) -> None:
    assert_a_wrong_shape_is_a_backend_error_and_the_server_lives_on("kserve_v2", mlserver)


def test_a_server_that_is_down_is_a_backend_error_after_the_retries() -> None:
    assert_a_server_that_is_down_is_unavailable_after_the_retries("kserve_v2")


def test_answers_that_do_not_fit_their_shape_are_backend_errors() -> None:
    tensor = oip.ModelInferResponse.InferOutputTensor(name="p", datatype="FP32", shape=[2, 2])
    assert output_array(tensor, np.arange(4, dtype="<f4").tobytes(), "t").tolist() == [[0, 1], [2, 3]]
    with pytest.raises(BackendError, match="7 bytes"):
        output_array(tensor, b"\0" * 7, "t")
    tensor.contents.fp32_contents.extend([1.0, 2.0, 3.0])
    with pytest.raises(BackendError, match="3 values"):
        output_array(tensor, None, "t")


def test_the_triton_repository_is_every_model_file_with_a_config_triton_reads(tmp_path: Path) -> None:
    folders = write_triton_repository(MODEL_REPO, tmp_path)
    files = served_files(MODEL_REPO)
    assert set(folders) == set(files)
    for name, folder in folders.items():
        assert (folder / "1" / "model.onnx").read_bytes() == files[name].read_bytes()
    # Triton's own ModelConfig message (tritonclient, in MLServer's environment) parses every config.pbtxt.
    read = (
        "import sys, pathlib; from google.protobuf import text_format; "
        "from tritonclient.grpc.model_config_pb2 import ModelConfig; "
        "paths = pathlib.Path(sys.argv[1]).glob('*/config.pbtxt'); "
        "configs = [text_format.Parse(p.read_text(), ModelConfig()) for p in paths]; "
        "print(' '.join(f'{c.name}:{c.backend}:{c.max_batch_size}' for c in configs))"
    )
    result = subprocess.run(
        [str(MLSERVER_ENV / "bin" / "python"), "-c", read, str(tmp_path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.split()) == sorted(f"{name}:onnxruntime:0" for name in files)


@pytest.fixture(scope="module")
def mlserver_api(mlserver: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    yield from stack_on("kserve_v2", mlserver, tmp_path_factory.mktemp("oip-logs"), tmp_path_factory.mktemp("oip-db"))


@pytest.mark.slow
def test_every_service_answers_through_mlserver_as_in_process(
    float_api: httpx.Client, mlserver_api: httpx.Client
) -> None:
    assert_same_analysis(float_api, mlserver_api)


@pytest.mark.slow
def test_the_generator_makes_the_same_faces_through_mlserver(api: httpx.Client, mlserver_api: httpx.Client) -> None:
    assert_same_generated_faces(api, mlserver_api)
