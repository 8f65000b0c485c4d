"""One-operator ONNX graphs through deploy/tfserving/onnx_to_tf.py, each compared with ONNX's reference
implementation; and the cases the translation must refuse. Runs in the TensorFlow environment (TensorFlow cannot
be imported beside our stubs): test_tfserving.py runs it and reads one JSON line per case.

    .cache/tools-tf/bin/python -m tests.deploy.tf_op_cases
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from deploy.tfserving.onnx_to_tf import UnsupportedOnnx, serving_function

rng = np.random.default_rng(0)
F32, I64 = TensorProto.FLOAT, TensorProto.INT64


def r(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


@dataclass
class Case:
    name: str
    op: str
    inputs: dict[str, np.ndarray]  # graph inputs (the first dimension stays open, as our models' batch)
    attrs: dict[str, Any] = field(default_factory=dict)
    weights: dict[str, np.ndarray] = field(default_factory=dict)  # initializers, after the inputs
    refused: bool = False
    opset: int = 17


CASES = [
    Case(
        "conv pads/stride/dilation",
        "Conv",
        {"x": r(2, 3, 9, 10)},
        {"pads": [1, 0, 2, 1], "strides": [2, 1], "dilations": [2, 1]},
        {"w": r(4, 3, 3, 2), "b": r(4)},
    ),
    Case("conv groups", "Conv", {"x": r(2, 4, 7, 7)}, {"group": 2, "pads": [1, 1, 1, 1]}, {"w": r(6, 2, 3, 3)}),
    Case(
        "conv depthwise ×2, stride 2",
        "Conv",
        {"x": r(2, 3, 8, 8)},
        {"group": 3, "strides": [2, 2]},
        {"w": r(6, 1, 3, 3)},
    ),
    Case(
        "conv transpose",
        "ConvTranspose",
        {"x": r(2, 4, 5, 6)},
        {"strides": [2, 2], "pads": [1, 1, 1, 1], "output_padding": [1, 1]},
        {"w": r(4, 3, 4, 4), "b": r(3)},
    ),
    Case(
        "max pool padded",
        "MaxPool",
        {"x": r(2, 3, 9, 9)},
        {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]},
    ),
    Case(
        "max pool ceil", "MaxPool", {"x": r(2, 3, 9, 10)}, {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}
    ),
    Case("average pool", "AveragePool", {"x": r(2, 3, 8, 8)}, {"kernel_shape": [2, 2], "strides": [2, 2]}),
    Case("global average pool", "GlobalAveragePool", {"x": r(2, 3, 5, 4)}),
    Case(
        "pad",
        "Pad",
        {"x": r(2, 3, 4, 4)},
        {"mode": "constant"},
        {"pads": np.array([0, 0, 1, 2, 0, 0, 3, 0], np.int64), "value": np.array(0.5, np.float32)},
    ),
    Case("gemm", "Gemm", {"a": r(3, 5)}, {"transB": 1, "alpha": 0.5, "beta": 2.0}, {"b": r(4, 5), "c": r(4)}),
    Case("matmul vector", "MatMul", {"a": r(3, 5)}, {}, {"b": r(5)}),
    Case(
        "batch norm",
        "BatchNormalization",
        {"x": r(2, 3, 4, 4)},
        {"epsilon": 1e-3},
        {"s": r(3), "bias": r(3), "mean": r(3), "var": np.abs(r(3)) + 0.1},
    ),
    Case("reshape 0 and -1", "Reshape", {"x": r(2, 3, 4, 5)}, {}, {"shape": np.array([0, -1, 5], np.int64)}),
    Case("flatten", "Flatten", {"x": r(2, 3, 4, 5)}, {"axis": 2}),
    Case("squeeze", "Squeeze", {"x": r(2, 3, 1)}, {}, {"axes": np.array([-1], np.int64)}),
    Case("unsqueeze negative", "Unsqueeze", {"x": r(3, 5)}, {}, {"axes": np.array([-1, -2], np.int64)}),
    Case("clip max only", "Clip", {"x": r(2, 6)}, {}, {"min": np.zeros((), np.float32)}),
    Case("prelu", "PRelu", {"x": r(2, 3, 4, 4)}, {}, {"slope": r(3, 1, 1)}),
    Case("softmax", "Softmax", {"x": r(2, 7)}, {"axis": 1}),
    Case("concat", "Concat", {"x": r(2, 3), "y": r(2, 4)}, {"axis": 1}),
    Case("gather negative", "Gather", {"x": r(2, 5)}, {"axis": 1}, {"i": np.array([-1, 0, -3], np.int64)}),
    Case("transpose", "Transpose", {"x": r(2, 3, 4, 5)}, {"perm": [0, 3, 1, 2]}),
    Case("div integers", "Div", {"x": np.array([[7, -7, 9]], np.int64)}, {}, {"y": np.array([2, 2, -4], np.int64)}),
    Case("cast", "Cast", {"x": r(2, 3) * 100}, {"to": TensorProto.INT32}),
    Case("shape", "Shape", {"x": r(2, 3, 4)}),
    Case("sigmoid", "Sigmoid", {"x": r(2, 3)}),
    Case("tanh", "Tanh", {"x": r(2, 3)}),
    Case("relu", "Relu", {"x": r(2, 3)}),
    Case("sub", "Sub", {"x": r(2, 3)}, {}, {"y": r(3)}),
    Case("mul", "Mul", {"x": r(2, 3)}, {}, {"y": r(3)}),
    Case("add", "Add", {"x": r(2, 3)}, {}, {"y": r(3)}),
    Case("mean, broadcast", "Mean", {"x": r(2, 3), "y": r(2, 3)}, {}, {"z": r(3)}),
    # What the translation must refuse rather than get wrong:
    Case(
        "max pool ceil with pads",
        "MaxPool",
        {"x": r(2, 3, 4, 4)},
        {"kernel_shape": [2, 2], "strides": [2, 2], "pads": [0, 0, 1, 1], "ceil_mode": 1},
        refused=True,
    ),
    Case(
        "conv transpose auto_pad",
        "ConvTranspose",
        {"x": r(2, 4, 3, 4)},
        {"strides": [2, 2], "auto_pad": "SAME_UPPER"},
        {"w": r(4, 3, 3, 3)},
        refused=True,
    ),
    Case(
        "batch norm 2-D",
        "BatchNormalization",
        {"x": r(2, 3)},
        {},
        {"s": r(3), "bias": r(3), "mean": r(3), "var": np.abs(r(3)) + 0.1},
        refused=True,
    ),
    Case("shape start", "Shape", {"x": r(2, 3, 4)}, {"start": 1}, refused=True),
    Case("opset 11, upgraded by ONNX's converter", "Relu", {"x": r(2, 3)}, opset=11),
    Case(
        "resize nearest ×2 (YuNet's)",
        "Resize",
        {"x": r(2, 3, 4, 5)},
        {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"},
        {"roi": np.zeros(0, np.float32), "scales": np.array([1, 1, 2, 3], np.float32)},
    ),
    Case(
        "resize linear",
        "Resize",
        {"x": r(2, 3, 4, 5)},
        {"mode": "linear"},
        {"roi": np.zeros(0, np.float32), "scales": np.array([1, 1, 2, 2], np.float32)},
        refused=True,
    ),
    Case("unknown operator", "Erf", {"x": r(2, 3)}, refused=True),
]


def model_of(case: Case) -> onnx.ModelProto:
    def info(name: str, value: np.ndarray) -> onnx.ValueInfoProto:
        dtype = helper.np_dtype_to_tensor_dtype(value.dtype)
        return helper.make_tensor_value_info(name, dtype, ["N", *value.shape[1:]])

    node = helper.make_node(case.op, [*case.inputs, *case.weights], ["out"], **case.attrs)
    graph = helper.make_graph(
        [node],
        case.name,
        [info(k, v) for k, v in case.inputs.items()],
        [helper.make_value_info("out", helper.TypeProto())],
        [numpy_helper.from_array(v, k) for k, v in case.weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", case.opset)])
    model.ir_version = 8
    return model


def run(case: Case) -> dict[str, Any]:
    model = model_of(case)
    try:
        got = serving_function(model)(*case.inputs.values())["out"].numpy()
    except UnsupportedOnnx as exc:
        return {"case": case.name, "ok": case.refused, "detail": f"refused: {exc}"}
    except Exception as exc:  # a translation that breaks is a failed case, not a crashed run
        return {"case": case.name, "ok": False, "detail": f"{type(exc).__name__}: {str(exc)[:300]}"}
    if case.refused:
        return {"case": case.name, "ok": False, "detail": f"translated to {got.shape} instead of refused"}
    (expected,) = ReferenceEvaluator(model).run(None, case.inputs)
    if got.shape != expected.shape or got.dtype != expected.dtype:
        return {"case": case.name, "ok": False, "detail": f"{got.dtype}{got.shape} vs {expected.dtype}{expected.shape}"}
    diff = float(np.abs(got.astype(np.float64) - expected.astype(np.float64)).max()) if got.size else 0.0
    return {"case": case.name, "ok": diff <= 1e-4, "detail": f"max difference {diff:.2e}"}


if __name__ == "__main__":
    for case in CASES:
        print(json.dumps(run(case)), flush=True)
