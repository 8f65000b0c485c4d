"""What the model-server tests share: the in-process stack on the float models, the reference a model server's
answers are compared with (the session's stack runs the int8 variants, which no model server is handed)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.deploy.model_servers import stack_on


@pytest.fixture(scope="session")
def float_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    yield from stack_on("onnx", "", tmp_path_factory.mktemp("float-logs"), tmp_path_factory.mktemp("float-db"))
