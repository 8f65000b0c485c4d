"""Inference backends behind one interface; `create_backend` picks one by configuration."""

from __future__ import annotations

from pathlib import Path

from services.runtime.backends.base import BackendError, InferenceBackend


def create_backend(kind: str, path: Path, intra_op_threads: int = 0) -> InferenceBackend:
    if kind == "onnx":
        from services.runtime.backends.onnx import OnnxBackend

        return OnnxBackend(path, intra_op_threads=intra_op_threads)
    raise ValueError(f"unknown inference backend {kind!r}")


__all__ = ["BackendError", "InferenceBackend", "create_backend"]
