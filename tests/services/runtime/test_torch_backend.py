"""The torch backend (onnx2torch, in-process) answers as ONNX Runtime does, model by model, on the CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from services.runtime.backends import BackendOptions, create_backend
from services.runtime.backends.onnx import OnnxBackend
from services.runtime.backends.torch import TorchBackend
from services.runtime.modelrepo import read_config
from tests.onnx_inputs import sample_inputs
from tests.services.conftest import MODEL_REPO

# onnx2torch has no converter for Pad from opset 18, which Cydral's age network uses.
UNSUPPORTED = {"agegender_cydral/age.onnx"}
# Every file of every model that may run on the torch backend (int8 variants run on ONNX Runtime only: `runs_on`).
FILES = sorted(
    str(p.relative_to(MODEL_REPO))
    for p in MODEL_REPO.glob("*/*.onnx")
    if not read_config(p.parent).runs_on or "torch" in read_config(p.parent).runs_on
)


@pytest.mark.parametrize("path", [f for f in FILES if f not in UNSUPPORTED])
def test_matches_onnx_runtime(path: str) -> None:
    reference = OnnxBackend(MODEL_REPO / path)
    torch_backend = create_backend(BackendOptions(kind="torch", device="cpu"), MODEL_REPO / path, "x")
    assert isinstance(torch_backend, TorchBackend) and torch_backend.output_names == reference.output_names
    feeds = sample_inputs(MODEL_REPO / path, batch=3)
    expected, got = reference.run(feeds), torch_backend.run(feeds)
    for name, value in expected.items():
        assert got[name].shape == value.shape
        # the generator's tanh images and raw embeddings are not probabilities: compare relative to their scale
        assert np.abs(got[name] - value).max() <= 1e-4 * max(1.0, float(np.abs(value).max())), name


@pytest.mark.parametrize("path", sorted(UNSUPPORTED))
def test_a_model_it_cannot_convert_fails_at_load_with_its_name(path: str) -> None:
    with pytest.raises(ValueError, match=Path(path).name):
        TorchBackend(MODEL_REPO / path, device="cpu")
