"""What every model-server backend shares: the model's tensor names, tensors as bytes, deadlines and retries."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import grpc
import numpy as np
import onnxruntime as ort

from services.runtime.backends.base import BackendError, BackendOptions, InferenceBackend
from services.runtime.channels import REPLICA_OPTIONS

T = TypeVar("T")
# Codes worth another try: the server is restarting, overloaded, or a connection broke.
RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED}
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
# One channel per server address for the whole process: gRPC multiplexes the model calls over it.
_channels: dict[str, grpc.Channel] = {}
_channels_lock = threading.Lock()


def channel_to(url: str) -> grpc.Channel:
    with _channels_lock:
        if url not in _channels:
            options = [
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                *REPLICA_OPTIONS,
            ]
            _channels[url] = grpc.insecure_channel(url, options=options)
        return _channels[url]


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


def little_endian_bytes(array: np.ndarray) -> bytes:
    """The array's values as the raw bytes TF Serving and the Open Inference Protocol carry: C order, little-endian."""
    array = np.ascontiguousarray(array)
    return array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()


def array_from_bytes(data: bytes, dtype: np.dtype, shape: tuple[int, ...], what: str) -> np.ndarray:
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected:
        raise BackendError(f"{what}: {len(data)} bytes where {dtype}{list(shape)} takes {expected}")
    return np.frombuffer(data, dtype=dtype.newbyteorder("<")).astype(dtype).reshape(shape)


def array_from_values(values: object, dtype: np.dtype, shape: tuple[int, ...], what: str) -> np.ndarray:
    flat = np.asarray(values, dtype=dtype)
    if flat.size != int(np.prod(shape)):
        raise BackendError(f"{what}: {flat.size} values for shape {list(shape)}")
    return flat.reshape(shape)


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


class ModelServerBackend(InferenceBackend):
    """A model file served by a model server as `served`: its tensor names from the ONNX file, the server's
    channel, and the deadline and retries of every call; subclasses make the call."""

    server = "a model server"

    def __init__(self, path: Path, served: str, options: BackendOptions) -> None:
        if not options.url:
            raise ValueError(f"the {self.kind} backend needs backend_url (host:port of {self.server})")
        self.served = served
        self.timeout_s = options.timeout_s
        self.retries = options.retries
        self.input_names, self.output_names = onnx_io_names(path)
        self.channel = channel_to(options.url)

    def outputs_of(self, got: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The model's outputs, in its order, from what the server answered."""
        missing = set(self.output_names) - set(got)
        if missing:
            raise BackendError(f"{self.kind} {self.served}: the answer lacks {sorted(missing)}")
        return {name: got[name] for name in self.output_names}

    def call(self, method: Callable[..., T], request: object) -> T:
        """One RPC with this backend's deadline and retries; failures as BackendError."""
        return call_with_retries(
            lambda: method(request, timeout=self.timeout_s), self.retries, f"{self.kind} {self.served}"
        )
