"""TorchServe handler for every faceplane model file: .npz tensors in, .npz tensors out.

Packed into each `.mar` by `make model-archives`; it runs inside TorchServe's Python worker, where the faceplane
package must be installed. The model runs on the worker's GPU with the torch backend (fp16) when TorchServe gave
it one, else under ONNX Runtime on the CPU; FACEPLANE_TORCHSERVE_BACKEND=onnx|torch forces one. Batching is
ours (the services batch across requests), so the archives register with batch size 1.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from services.runtime.backends import BackendOptions, create_backend
from services.runtime.backends.base import InferenceBackend
from services.runtime.backends.remote import decode_tensors, encode_tensors


class FaceplaneHandler:
    def __init__(self) -> None:
        self.backend: InferenceBackend | None = None

    def initialize(self, context: Any) -> None:
        properties = context.system_properties
        model_file = Path(properties["model_dir"]) / context.manifest["model"]["serializedFile"]
        gpu = properties.get("gpu_id")
        kind = os.environ.get("FACEPLANE_TORCHSERVE_BACKEND") or ("torch" if gpu is not None else "onnx")
        device = f"cuda:{gpu}" if gpu is not None else "cpu"
        options = BackendOptions(kind=kind, device=device)  # type: ignore[arg-type]
        self.backend = create_backend(options, model_file, context.manifest["model"]["modelName"])

    def handle(self, data: list[dict[str, Any]], context: Any) -> list[bytes]:
        assert self.backend is not None
        answers = []
        for request in data:
            body = request.get("data") or request.get("body")
            answers.append(encode_tensors(self.backend.run(decode_tensors(bytes(body)))))
        return answers


_service = FaceplaneHandler()


def handle(data: list[dict[str, Any]] | None, context: Any) -> list[bytes] | None:
    """TorchServe's module-level entry point: called once with data None to initialise, then per batch."""
    if _service.backend is None:
        _service.initialize(context)
    if data is None:
        return None
    return _service.handle(data, context)
