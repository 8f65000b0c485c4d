"""The one interface every model call goes through, whatever runs the model."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

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


class BackendError(RuntimeError):
    """The backend could not run the model (server down, timeout, bad tensor); the caller maps it to UNAVAILABLE."""


class InferenceBackend(ABC):
    """Runs one model: named float/uint8 tensors in, named tensors out.

    Calls are synchronous and thread-safe; services call them from worker threads, never from the event loop.
    """

    kind: str
    # The graph's tensor names, in its order; every backend sets them when it loads the model.
    input_names: list[str]
    output_names: list[str]

    @abstractmethod
    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...
