"""TorchServe over its gRPC inference API: every model file is served as `<model>-<file key>` (`make
model-archives`), under our handler (`torchserve_handler.py`), and tensors travel as .npz bytes."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from torchserve_grpc import inference_pb2, inference_pb2_grpc

from services.runtime.backends.base import BackendError, BackendOptions
from services.runtime.backends.remote import ModelServerBackend, decode_tensors, encode_tensors


class TorchServeBackend(ModelServerBackend):
    kind = "torchserve"
    server = "TorchServe's gRPC inference API"

    def __init__(self, path: Path, served: str, options: BackendOptions) -> None:
        super().__init__(path, served, options)
        self._stub = inference_pb2_grpc.InferenceAPIsServiceStub(self.channel)

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        request = inference_pb2.PredictionsRequest(model_name=self.served, input={"data": encode_tensors(inputs)})
        reply = self.call(self._stub.Predictions, request)
        try:
            outputs = decode_tensors(reply.prediction)
        except ValueError as exc:  # the handler answered something that is not our tensors (e.g. an error text)
            raise BackendError(f"torchserve {self.served}: unreadable answer: {reply.prediction[:200]!r}") from exc
        return self.outputs_of(outputs)
