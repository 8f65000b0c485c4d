"""The recipes' ensembles (model-repo/recipes/onnx_ensemble.py): one graph answering the mean of its members."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

from recipes.onnx_ensemble import mean_of, member_of


def member(path: Path, weights: np.ndarray) -> Path:
    """images (N, 3) → softmax(images @ weights) as `probabilities`; every member names its weight `w`."""
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["images", "w"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        ],
        "member",
        [helper.make_tensor_value_info("images", onnx.TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("probabilities", onnx.TensorProto.FLOAT, ["batch", 2])],
        [numpy_helper.from_array(weights.astype(np.float32), "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def run(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["probabilities"], {"images": x})[0]


def test_the_ensemble_answers_the_mean_of_its_members(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    members = [member(tmp_path / f"m{i}.onnx", rng.normal(size=(3, 2)) * 3) for i in range(3)]
    x = rng.normal(size=(5, 3)).astype(np.float32)
    expected = np.mean([run(m, x) for m in members], axis=0)
    assert not np.allclose(run(members[0], x), expected, atol=1e-3)  # the members differ: the mean is not one of them
    ensemble = mean_of(members, tmp_path / "ensemble" / "model.onnx")
    np.testing.assert_allclose(run(ensemble, x), expected, atol=1e-6)
    session = ort.InferenceSession(str(ensemble), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["images"]
    assert session.get_inputs()[0].shape == ["batch", 3]


def test_a_member_taken_out_of_the_ensemble_answers_as_it_did_alone(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    members = [member(tmp_path / f"m{i}.onnx", rng.normal(size=(3, 2)) * 3) for i in range(3)]
    ensemble = mean_of(members, tmp_path / "ensemble.onnx")
    x = rng.normal(size=(4, 3)).astype(np.float32)
    for index, original in enumerate(members):
        alone = member_of(ensemble, index, tmp_path / f"alone{index}.onnx")
        np.testing.assert_allclose(run(alone, x), run(original, x), atol=1e-6)
        assert len(onnx.load(str(alone)).graph.node) == 2  # the other members' nodes are gone
    with pytest.raises(ValueError, match="no member 3"):
        member_of(ensemble, 3, tmp_path / "none.onnx")
