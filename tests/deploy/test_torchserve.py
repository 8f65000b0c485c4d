"""The torchserve backend for real: TorchServe (Java) serving our .mar archives, and a second full stack whose
services all run their models there. Every answer must match the in-process ONNX Runtime stack's."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from services.runtime.backends import BackendOptions
from tests.deploy.model_servers import (
    assert_a_server_that_is_down_is_unavailable_after_the_retries,
    assert_an_unknown_model_is_a_backend_error,
    assert_every_model_file_matches_onnx_runtime,
    assert_same_analysis,
    assert_same_generated_faces,
    model_server,
    stack_on,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def torchserve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """TorchServe with every model file of model-repo/; its gRPC inference address."""
    with model_server("torchserve", tmp_path_factory.mktemp("torchserve")) as url:
        yield url


def test_every_model_file_answers_as_onnx_runtime_does(torchserve: str) -> None:
    assert_every_model_file_matches_onnx_runtime(BackendOptions(kind="torchserve", url=torchserve))


def test_a_model_the_server_does_not_have_is_a_backend_error(torchserve: str) -> None:
    assert_an_unknown_model_is_a_backend_error("torchserve", torchserve)


def test_a_server_that_is_down_is_a_backend_error_after_the_retries() -> None:
    assert_a_server_that_is_down_is_unavailable_after_the_retries("torchserve")


@pytest.fixture(scope="module")
def torchserve_api(torchserve: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    yield from stack_on("torchserve", torchserve, tmp_path_factory.mktemp("ts-logs"), tmp_path_factory.mktemp("ts-db"))


def test_every_service_answers_through_torchserve_as_in_process(
    float_api: httpx.Client, torchserve_api: httpx.Client
) -> None:
    assert_same_analysis(float_api, torchserve_api)


def test_the_generator_makes_the_same_faces_through_torchserve(api: httpx.Client, torchserve_api: httpx.Client) -> None:
    assert_same_generated_faces(api, torchserve_api)
