"""TorchServe over its gRPC inference API: every model file is served as `<model>-<file key>` (`make
model-archives`), under our handler (`torchserve_handler.py`), and tensors travel as .npz bytes."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path

import grpc
import numpy as np
from torchserve_grpc import inference_pb2, inference_pb2_grpc

from services.runtime.backends.base import BackendError, BackendOptions, InferenceBackend
from services.runtime.backends.remote import call_with_retries, decode_tensors, encode_tensors, onnx_io_names

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
            ]
            _channels[url] = grpc.insecure_channel(url, options=options)
        return _channels[url]


class TorchServeBackend(InferenceBackend):
    kind = "torchserve"

    def __init__(self, path: Path, served: str, options: BackendOptions) -> None:
        if not options.url:
            raise ValueError("the torchserve backend needs backend_url (host:port of TorchServe's gRPC inference API)")
        self.served = served
        self.timeout_s = options.timeout_s
        self.retries = options.retries
        self._inputs, self._outputs = onnx_io_names(path)
        self._stub = inference_pb2_grpc.InferenceAPIsServiceStub(channel_to(options.url))

    @property
    def input_names(self) -> list[str]:
        return self._inputs

    @property
    def output_names(self) -> list[str]:
        return self._outputs

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        request = inference_pb2.PredictionsRequest(model_name=self.served, input={"data": encode_tensors(inputs)})
        reply = call_with_retries(
            lambda: self._stub.Predictions(request, timeout=self.timeout_s), self.retries, f"torchserve {self.served}"
        )
        try:
            outputs = decode_tensors(reply.prediction)
        except ValueError as exc:  # the handler answered something that is not our tensors (e.g. an error text)
            raise BackendError(f"torchserve {self.served}: unreadable answer: {reply.prediction[:200]!r}") from exc
        return {name: outputs[name] for name in self._outputs}
