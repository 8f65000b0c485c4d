"""PyTorch in-process: the GPU path. Our ONNX models are converted to torch modules with onnx2torch at load time.

On CUDA the model runs under fp16 autocast (our graphs take uint8 or float32 and cast inside, so the weights stay
fp32 and autocast picks fp16 where it is safe); on the CPU it runs in fp32 and answers as ONNX Runtime does.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper
from onnx2torch import convert

from services.runtime.backends.base import BackendError, InferenceBackend


def inline_weight_casts(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Weights stored fp16 with a Cast back to fp32 (how model-repo keeps files small) become plain fp32
    initialisers: onnx2torch wants a Conv's weights as initialisers, not as a node's output."""
    graph = proto.graph
    initialisers = {i.name: i for i in graph.initializer}
    casts = [n for n in graph.node if n.op_type == "Cast" and n.input[0] in initialisers]
    if not casts:
        return proto
    for node in casts:
        to = next(a.i for a in node.attribute if a.name == "to")
        value = numpy_helper.to_array(initialisers[node.input[0]]).astype(helper.tensor_dtype_to_np_dtype(to))
        graph.initializer.append(numpy_helper.from_array(value, node.output[0]))
    sources = {n.input[0] for n in casts}
    still_used = {i for n in graph.node if n not in casts for i in n.input}
    kept = [i for i in graph.initializer if i.name not in sources or i.name in still_used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = [n for n in graph.node if n not in casts]
    del graph.node[:]
    graph.node.extend(nodes)
    return proto


class TorchBackend(InferenceBackend):
    kind = "torch"

    def __init__(self, path: Path, device: str = "auto", fp16: bool = True, intra_op_threads: int = 0) -> None:
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.fp16 = fp16 and self.device.type == "cuda"
        if intra_op_threads and self.device.type == "cpu":
            torch.set_num_threads(intra_op_threads)
        proto = inline_weight_casts(onnx.load(str(path)))
        weights = {t.name for t in proto.graph.initializer}
        self.input_names = [i.name for i in proto.graph.input if i.name not in weights]
        self.output_names = [o.name for o in proto.graph.output]
        try:
            self._module = convert(proto).eval().to(self.device)
        except Exception as exc:  # an operator onnx2torch does not know: say which model, at start-up
            raise ValueError(f"{path} cannot run on the torch backend: {exc}") from exc
        # onnx2torch modules are not documented thread-safe; one call at a time per model (the GPU serialises anyway).
        self._lock = threading.Lock()

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            arrays = [np.ascontiguousarray(inputs[name]) for name in self.input_names]
        except KeyError as exc:
            raise BackendError(f"missing input {exc}") from exc
        tensors = [torch.from_numpy(array).to(self.device) for array in arrays]
        try:
            with self._lock, torch.inference_mode(), torch.autocast(self.device.type, torch.float16, self.fp16):
                out = self._module(*tensors)
        except (RuntimeError, ValueError) as exc:
            raise BackendError(str(exc)) from exc
        outputs = out if isinstance(out, (list, tuple)) else [out]
        return {name: t.float().cpu().numpy() for name, t in zip(self.output_names, outputs, strict=True)}
