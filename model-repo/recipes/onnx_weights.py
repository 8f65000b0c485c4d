"""Model files kept small: large fp32 weights stored as fp16, each with a Cast back to fp32 (ONNX Runtime folds the
Casts at load time; the torch backend inlines them), so the graph still computes in fp32."""

from __future__ import annotations

import onnx
from onnx import helper, numpy_helper


def store_weights_fp16(model: onnx.ModelProto, min_size: int = 1024) -> onnx.ModelProto:
    """In place: every fp32 initializer of at least `min_size` values becomes fp16 plus a Cast."""
    graph = model.graph
    casts = []
    for init in graph.initializer:
        array = numpy_helper.to_array(init)
        if array.dtype.name != "float32" or array.size < min_size:
            continue
        name = init.name
        init.CopyFrom(numpy_helper.from_array(array.astype("float16"), f"{name}_fp16"))
        casts.append(helper.make_node("Cast", [f"{name}_fp16"], [name], to=onnx.TensorProto.FLOAT))
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    return model
