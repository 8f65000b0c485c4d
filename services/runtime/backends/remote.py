"""What every model-server backend shares: the model's tensor names, tensors as bytes, deadlines and retries."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import grpc
import numpy as np
import onnxruntime as ort

from services.runtime.backends.base import BackendError

T = TypeVar("T")
# Codes worth another try: the server is restarting, overloaded, or a connection broke.
RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED}


def onnx_io_names(path: Path) -> tuple[list[str], list[str]]:
    """The graph's input and output names, read from the model folder's ONNX file (the server runs the same)."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return [i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()]


def encode_tensors(tensors: Mapping[str, np.ndarray]) -> bytes:
    """Named arrays as one .npz (uncompressed, no pickles): what our TorchServe handler reads and writes."""
    buffer = io.BytesIO()
    np.savez(buffer, **{name: np.ascontiguousarray(value) for name, value in tensors.items()})
    return buffer.getvalue()


def decode_tensors(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def call_with_retries(call: Callable[[], T], retries: int, what: str) -> T:
    """`call` again after 50, 100, 200 ms … while the server answers with a retryable code; then BackendError
    (which the service turns into UNAVAILABLE for its caller). Deadlines are not retried: the caller's own
    deadline is already spent."""
    for attempt in range(retries + 1):
        try:
            return call()
        except grpc.RpcError as exc:
            code = exc.code()
            if code in RETRYABLE and attempt < retries:
                time.sleep(0.05 * 2**attempt)
                continue
            raise BackendError(f"{what}: {code.name if code else 'error'}: {exc.details()}") from exc
    raise AssertionError("unreachable")
