"""Inference backends behind one interface; `create_backend` picks one by configuration."""

from __future__ import annotations

from pathlib import Path

from services.runtime.backends.base import BackendError, BackendKind, BackendOptions, InferenceBackend


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
        from services.runtime.backends.kserve import KServeV2Backend

        return KServeV2Backend(path, served, options)
    raise ValueError(f"unknown inference backend {options.kind!r}")


__all__ = ["BackendError", "BackendKind", "BackendOptions", "InferenceBackend", "create_backend", "served_name"]
