"""Our ONNX graphs as TensorFlow functions, op by op, for SavedModels that TF Serving can serve.

Only the operators and attributes our models use are translated (`OPS`, opset 13 and later); an operator,
attribute or case outside them fails the export with its name instead of exporting something wrong
(tests/deploy/tf_op_cases.py checks each translation against ONNX's reference implementation). Tensors keep
ONNX's NCHW layout between ops: TensorFlow's CPU kernels convolve and pool only NHWC, so those ops transpose in
and out (Grappler removes the pairs that cancel).

Runs in the TensorFlow environment (`make tools-tf`), never inside a service.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import onnx
import tensorflow as tf
from onnx import helper, numpy_helper, version_converter

Value = Any  # a tf.Tensor, or a numpy array for constants known at export time
TO_NHWC, TO_NCHW = [0, 2, 3, 1], [0, 3, 1, 2]
ONNX_TO_TF_DTYPE = {
    onnx.TensorProto.FLOAT: tf.float32,
    onnx.TensorProto.DOUBLE: tf.float64,
    onnx.TensorProto.FLOAT16: tf.float16,
    onnx.TensorProto.UINT8: tf.uint8,
    onnx.TensorProto.INT8: tf.int8,
    onnx.TensorProto.INT32: tf.int32,
    onnx.TensorProto.INT64: tf.int64,
    onnx.TensorProto.BOOL: tf.bool,
}


class UnsupportedOnnx(ValueError):
    """The graph uses an operator or attribute this exporter does not translate."""


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _no_auto_pad(node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise UnsupportedOnnx(f"{node.op_type} {node.name}: auto_pad")


def _hw_pads(node: onnx.NodeProto, attrs: dict[str, Any]) -> list[list[int]]:
    """ONNX pads (top, left, bottom, right) as NHWC paddings."""
    _no_auto_pad(node, attrs)
    top, left, bottom, right = attrs.get("pads", [0, 0, 0, 0])
    return [[0, 0], [top, bottom], [left, right], [0, 0]]


def _strides(attrs: dict[str, Any]) -> list[int]:
    return [1, *attrs.get("strides", [1, 1]), 1]


def _conv(node: onnx.NodeProto, x: Value, w: np.ndarray, b: np.ndarray | None = None) -> Value:
    attrs = _attrs(node)
    group = attrs.get("group", 1)
    dilations = list(attrs.get("dilations", [1, 1]))
    if not isinstance(w, np.ndarray) or w.ndim != 4:
        raise UnsupportedOnnx(f"Conv {node.name}: only 2-D convolutions with constant weights")
    x = tf.pad(tf.transpose(x, TO_NHWC), _hw_pads(node, attrs))
    out_channels, in_per_group = w.shape[:2]
    if group == 1:
        y = tf.nn.conv2d(x, w.transpose(2, 3, 1, 0), _strides(attrs), "VALID", dilations=dilations)
    elif in_per_group == 1:  # depthwise: each input channel convolved with out/in filters of its own
        if max(attrs.get("strides", [1, 1])) > 1 and max(dilations) > 1:
            raise UnsupportedOnnx(f"Conv {node.name}: depthwise with both stride and dilation")
        multiplier = out_channels // group
        kernel = w.reshape(group, multiplier, *w.shape[2:]).transpose(2, 3, 0, 1)
        y = tf.nn.depthwise_conv2d(x, kernel, _strides(attrs), "VALID", dilations=dilations)
    else:
        xs = tf.split(x, group, axis=3)
        ws = np.split(w, group, axis=0)
        y = tf.concat(
            [tf.nn.conv2d(xi, wi.transpose(2, 3, 1, 0), _strides(attrs), "VALID", dilations=dilations)
             for xi, wi in zip(xs, ws, strict=True)],
            axis=3,
        )  # fmt: skip
    if b is not None:
        y = y + b
    return tf.transpose(y, TO_NCHW)


def _conv_transpose(node: onnx.NodeProto, x: Value, w: np.ndarray, b: np.ndarray | None = None) -> Value:
    attrs = _attrs(node)
    _no_auto_pad(node, attrs)
    if attrs.get("group", 1) != 1 or list(attrs.get("dilations", [1, 1])) != [1, 1] or "output_shape" in attrs:
        raise UnsupportedOnnx(f"ConvTranspose {node.name}: only group 1, no dilation, no output_shape")
    kh, kw = w.shape[2:]
    sh, sw = attrs.get("strides", [1, 1])
    extra_h, extra_w = attrs.get("output_padding", [0, 0])
    top, left, bottom, right = attrs.get("pads", [0, 0, 0, 0])
    x = tf.transpose(x, TO_NHWC)
    shape = tf.shape(x)
    full_h = (shape[1] - 1) * sh + kh + extra_h
    full_w = (shape[2] - 1) * sw + kw + extra_w
    output_shape = tf.stack([shape[0], full_h, full_w, w.shape[1]])
    # tf's filter is (h, w, out, in); ONNX's (in, out, h, w). Both are the gradient of a convolution: no flip.
    y = tf.nn.conv2d_transpose(x, w.transpose(2, 3, 1, 0), output_shape, [1, sh, sw, 1], "VALID")
    y = y[:, top : full_h - bottom, left : full_w - right, :]
    if b is not None:
        y = y + b
    return tf.transpose(y, TO_NCHW)


def _max_pool(node: onnx.NodeProto, x: Value) -> Value:
    attrs = _attrs(node)
    if list(attrs.get("dilations", [1, 1])) != [1, 1] or attrs.get("storage_order", 0):
        raise UnsupportedOnnx(f"MaxPool {node.name}: dilation or storage order")
    paddings = _hw_pads(node, attrs)
    if attrs.get("ceil_mode", 0):
        # Stride − 1 more rows and columns of −inf turn floor into ceil. ONNX drops a last window that would start
        # in the padding; with no padding and kernel ≥ stride none can, so only that case is translated.
        sh, sw = attrs.get("strides", [1, 1])
        kh, kw = attrs["kernel_shape"]
        if any(attrs.get("pads", [])) or kh < sh or kw < sw:
            raise UnsupportedOnnx(f"MaxPool {node.name}: ceil_mode with padding or a kernel smaller than its stride")
        paddings[1][1] += sh - 1
        paddings[2][1] += sw - 1
    x = tf.pad(tf.transpose(x, TO_NHWC), paddings, constant_values=float("-inf"))
    y = tf.nn.max_pool2d(x, [1, *attrs["kernel_shape"], 1], _strides(attrs), "VALID")
    return tf.transpose(y, TO_NCHW)


def _average_pool(node: onnx.NodeProto, x: Value) -> Value:
    attrs = _attrs(node)
    if attrs.get("ceil_mode", 0) or (any(attrs.get("pads", [])) and not attrs.get("count_include_pad", 0)):
        raise UnsupportedOnnx(f"AveragePool {node.name}: ceil_mode, or padding left out of the average")
    x = tf.pad(tf.transpose(x, TO_NHWC), _hw_pads(node, attrs))
    y = tf.nn.avg_pool2d(x, [1, *attrs["kernel_shape"], 1], _strides(attrs), "VALID")
    return tf.transpose(y, TO_NCHW)


def _pad(node: onnx.NodeProto, x: Value, pads: np.ndarray, value: Value = None, axes: Value = None) -> Value:
    if _attrs(node).get("mode", b"constant") not in (b"constant", "constant") or axes is not None:
        raise UnsupportedOnnx(f"Pad {node.name}: only constant padding over all axes")
    pads = np.asarray(pads).reshape(2, -1).T.tolist()
    fill = 0 if value is None else np.asarray(value).reshape(()).item()
    return tf.pad(x, pads, constant_values=fill)


def _gemm(node: onnx.NodeProto, a: Value, b: Value, c: Value = None) -> Value:
    attrs = _attrs(node)
    y = tf.matmul(a, b, transpose_a=bool(attrs.get("transA", 0)), transpose_b=bool(attrs.get("transB", 0)))
    y = y * attrs.get("alpha", 1.0)
    return y if c is None else y + attrs.get("beta", 1.0) * c


def _matmul(node: onnx.NodeProto, a: Value, b: Value) -> Value:
    if len(a.shape) == 1:
        raise UnsupportedOnnx(f"MatMul {node.name}: a vector on the left")
    if len(b.shape) == 1:  # numpy's rule: a vector on the right contracts the last axis away
        return tf.tensordot(a, b, axes=[[len(a.shape) - 1], [0]])
    return tf.matmul(a, b)


def _batch_norm(node: onnx.NodeProto, x: Value, scale: Value, bias: Value, mean: Value, var: Value) -> Value:
    eps = _attrs(node).get("epsilon", 1e-5)
    if x.shape.rank != 4:
        raise UnsupportedOnnx(f"BatchNormalization {node.name}: only NCHW (4-D) input")
    per_channel = (-1, 1, 1)
    factor = np.asarray(scale) / np.sqrt(np.asarray(var) + eps)
    shift = np.asarray(bias) - np.asarray(mean) * factor
    return x * factor.reshape(per_channel).astype(np.float32) + shift.reshape(per_channel).astype(np.float32)


def _reshape(node: onnx.NodeProto, x: Value, shape: Value) -> Value:
    if isinstance(shape, np.ndarray) and (shape == 0).any():  # ONNX's 0 copies that dimension of the input
        dims = tf.unstack(tf.shape(x, out_type=tf.int64))
        shape = tf.stack([dims[i] if s == 0 else tf.constant(s, tf.int64) for i, s in enumerate(shape.tolist())])
    return tf.reshape(x, shape)


def _flatten(node: onnx.NodeProto, x: Value) -> Value:
    axis = _attrs(node).get("axis", 1)
    shape = tf.shape(x)
    return tf.reshape(x, tf.stack([tf.reduce_prod(shape[:axis]), tf.reduce_prod(shape[axis:])]))


def _squeeze(node: onnx.NodeProto, x: Value, axes: Value = None) -> Value:
    axes = _attrs(node).get("axes", axes)
    return tf.squeeze(x, None if axes is None else [int(a) for a in np.asarray(axes).ravel()])


def _unsqueeze(node: onnx.NodeProto, x: Value, axes: Value = None) -> Value:
    axes = [int(a) for a in np.asarray(_attrs(node).get("axes", axes)).ravel()]
    rank = len(x.shape) + len(axes)  # axes count in the output's dimensions
    for axis in sorted(a + rank if a < 0 else a for a in axes):
        x = tf.expand_dims(x, axis)
    return x


def _clip(node: onnx.NodeProto, x: Value, low: Value = None, high: Value = None) -> Value:
    attrs = _attrs(node)
    low = attrs.get("min", low)
    high = attrs.get("max", high)
    if low is not None:
        x = tf.maximum(x, tf.cast(low, x.dtype))
    if high is not None:
        x = tf.minimum(x, tf.cast(high, x.dtype))
    return x


def _prelu(node: onnx.NodeProto, x: Value, slope: Value) -> Value:
    return tf.maximum(x, 0.0) + slope * tf.minimum(x, 0.0)


def _cast(node: onnx.NodeProto, x: Value) -> Value:
    dtype = ONNX_TO_TF_DTYPE[_attrs(node)["to"]]
    if isinstance(x, np.ndarray):  # weights stored in fp16 and widened in the graph: stay constants
        return x.astype(dtype.as_numpy_dtype)
    return tf.cast(x, dtype)


def _softmax(node: onnx.NodeProto, x: Value) -> Value:
    return tf.nn.softmax(x, axis=_attrs(node).get("axis", -1))


def _concat(node: onnx.NodeProto, *xs: Value) -> Value:
    return tf.concat(list(xs), axis=_attrs(node)["axis"])


def _gather(node: onnx.NodeProto, x: Value, indices: Value) -> Value:
    axis = _attrs(node).get("axis", 0)
    size = tf.shape(x, out_type=tf.int64)[axis]
    indices = tf.cast(indices, tf.int64)
    # ONNX counts negative indices from the end; TF's gather would fail on the CPU and read zeros on a GPU.
    return tf.gather(x, tf.where(indices < 0, indices + size, indices), axis=axis)


def _divide(node: onnx.NodeProto, a: Value, b: Value) -> Value:
    a, b = tf.convert_to_tensor(a), tf.convert_to_tensor(b)
    return tf.truncatediv(a, b) if a.dtype.is_integer else tf.divide(a, b)  # ONNX truncates integers


def _shape(node: onnx.NodeProto, x: Value) -> Value:
    if "start" in _attrs(node) or "end" in _attrs(node):
        raise UnsupportedOnnx(f"Shape {node.name}: start/end")
    return tf.shape(x, out_type=tf.int64)


def _resize(node: onnx.NodeProto, x: Value, roi: Value = None, scales: Value = None, sizes: Value = None) -> Value:
    """Only what our graphs use: nearest-neighbour upsampling of NCHW by whole factors (YuNet's FPN), where
    ONNX's asymmetric/floor rule picks source pixel floor(i / s), which is each pixel repeated s times."""
    attrs = _attrs(node)
    rule = (attrs.get("mode", b"nearest"), attrs.get("coordinate_transformation_mode"), attrs.get("nearest_mode"))
    factors = None if scales is None or sizes is not None or not isinstance(scales, np.ndarray) else scales
    whole = factors is not None and factors.shape == (4,) and list(factors[:2]) == [1, 1]
    if rule != (b"nearest", b"asymmetric", b"floor") or not whole or not all(f == int(f) >= 1 for f in factors[2:]):
        raise UnsupportedOnnx(f"Resize {node.name}: only nearest upsampling by whole factors (asymmetric, floor)")
    return tf.repeat(tf.repeat(x, int(factors[2]), axis=2), int(factors[3]), axis=3)


def _transpose(node: onnx.NodeProto, x: Value) -> Value:
    return tf.transpose(x, _attrs(node)["perm"])


def _elementwise(fn: Callable[..., Value]) -> Callable[..., Value]:
    return lambda node, *xs: fn(*xs)


OPS: dict[str, Callable[..., Value]] = {
    "Add": _elementwise(tf.add),
    "Sub": _elementwise(tf.subtract),
    "Mul": _elementwise(tf.multiply),
    "Div": _divide,
    "Mean": _elementwise(lambda *xs: functools.reduce(tf.add, xs) / len(xs)),  # broadcasts, as ONNX's Mean
    "Relu": _elementwise(tf.nn.relu),
    "Sigmoid": _elementwise(tf.sigmoid),
    "Tanh": _elementwise(tf.tanh),
    "Shape": _shape,
    "GlobalAveragePool": _elementwise(lambda x: tf.reduce_mean(x, axis=[2, 3], keepdims=True)),
    "AveragePool": _average_pool,
    "BatchNormalization": _batch_norm,
    "Cast": _cast,
    "Clip": _clip,
    "Concat": _concat,
    "Conv": _conv,
    "ConvTranspose": _conv_transpose,
    "Flatten": _flatten,
    "Gather": _gather,
    "Gemm": _gemm,
    "MatMul": _matmul,
    "MaxPool": _max_pool,
    "Pad": _pad,
    "PRelu": _prelu,
    "Reshape": _reshape,
    "Resize": _resize,
    "Softmax": _softmax,
    "Squeeze": _squeeze,
    "Transpose": _transpose,
    "Unsqueeze": _unsqueeze,
}


def upgraded(model: onnx.ModelProto) -> onnx.ModelProto:
    """The graph at opset 13 or later: Softmax, Squeeze, Unsqueeze and Clip are translated as opset 13 defines
    them, so an older graph (YuNet's is opset 11) is first rewritten by ONNX's own version converter."""
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset >= 13:
        return model
    try:
        return version_converter.convert_version(model, 13)
    except Exception as exc:  # the converter raises plain RuntimeErrors and ValueErrors from C++
        raise UnsupportedOnnx(f"opset {opset}: ONNX's converter cannot bring it to opset 13: {exc}") from exc


def check_supported(model: onnx.ModelProto) -> None:
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 13:
        raise UnsupportedOnnx(f"opset {opset}: only opset 13 and later (see `upgraded`)")
    missing = sorted({node.op_type for node in model.graph.node} - set(OPS) - {"Constant"})
    if missing:
        raise UnsupportedOnnx(f"no TensorFlow translation for: {', '.join(missing)}")


def graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    initialised = {init.name for init in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in initialised]


def input_signature(model: onnx.ModelProto) -> list[tf.TensorSpec]:
    """One TensorSpec per graph input, named as in ONNX; symbolic dimensions (batch, height, …) stay open."""
    specs = []
    for value in graph_inputs(model):
        tensor_type = value.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim]
        specs.append(tf.TensorSpec(shape, ONNX_TO_TF_DTYPE[tensor_type.elem_type], name=value.name))
    return specs


def run_graph(model: onnx.ModelProto, inputs: Sequence[tf.Tensor]) -> dict[str, tf.Tensor]:
    """Trace the graph's nodes in order; returns the graph outputs by their ONNX names."""
    env: dict[str, Value] = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    env.update({value.name: tensor for value, tensor in zip(graph_inputs(model), inputs, strict=True)})
    env[""] = None  # an optional input left out
    for node in model.graph.node:
        if node.op_type == "Constant":
            if "value" not in _attrs(node):
                raise UnsupportedOnnx(f"Constant {node.name}: only a `value` tensor")
            env[node.output[0]] = numpy_helper.to_array(_attrs(node)["value"])
            continue
        args = [env[name] for name in node.input]
        while args and args[-1] is None:
            args.pop()
        result = OPS[node.op_type](node, *args)
        env[node.output[0]] = result
    return {out.name: tf.convert_to_tensor(env[out.name], name=out.name) for out in model.graph.output}


def serving_function(model: onnx.ModelProto) -> tf.types.experimental.PolymorphicFunction:
    """The graph as one tf.function over `input_signature`, traced once per call shape. Plain Python tracing
    (autograph off): the translation branches only on what is known at export, and its errors stay unwrapped."""
    model = upgraded(model)
    check_supported(model)
    return tf.function(
        lambda *inputs: run_graph(model, inputs), input_signature=input_signature(model), autograph=False
    )
