"""Inference backends behind one interface; `create_backend` picks one by configuration."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from services.runtime.backends.base import BackendError, InferenceBackend

BackendKind = Literal["onnx", "torch", "torchserve", "tfserving", "kserve_v2"]


@dataclass(frozen=True)
class BackendOptions:
    kind: BackendKind = "onnx"
    # onnx / torch on the CPU: threads per model call (one is fastest for our small models, see ServiceSettings).
    intra_op_threads: int = 1
    # torch: "auto" (CUDA when there is one), "cpu", "cuda", "cuda:1", ...; fp16 autocast on CUDA.
    device: str = "auto"
    fp16: bool = True
    # Model servers: host:port of their gRPC inference API, a deadline per call and retries on UNAVAILABLE.
    url: str = ""
    timeout_s: float = 10.0
    retries: int = 2


def served_name(model: str, key: str) -> str:
    """The name a model file gets inside a model server: `<model folder>-<file key>`, e.g. `mtcnn-pnet`."""
    return f"{model}-{key}"


def create_backend(options: BackendOptions, path: Path, served: str) -> InferenceBackend:
    """A backend for the ONNX file at `path`, known to model servers as `served`."""
    if options.kind == "onnx":
        from services.runtime.backends.onnx import OnnxBackend

        return OnnxBackend(path, intra_op_threads=options.intra_op_threads)
    if options.kind == "torch":
        from services.runtime.backends.torch import TorchBackend

        return TorchBackend(path, options.device, options.fp16, options.intra_op_threads)
    if options.kind == "torchserve":
        from services.runtime.backends.torchserve import TorchServeBackend

        return TorchServeBackend(path, served, options)
    if options.kind == "tfserving":
        from services.runtime.backends.tfserving import TfServingBackend

        return TfServingBackend(path, served, options)
    if options.kind == "kserve_v2":
        from services.runtime.backends.kserve import KServeBackend

        return KServeBackend(path, served, options)
    raise ValueError(f"unknown inference backend {options.kind!r}")


__all__ = ["BackendError", "BackendKind", "BackendOptions", "InferenceBackend", "create_backend", "served_name"]
