"""The one interface every model call goes through, whatever runs the model."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping

import numpy as np


class BackendError(RuntimeError):
    """The backend could not run the model (server down, timeout, bad tensor); the caller maps it to UNAVAILABLE."""


class InferenceBackend(ABC):
    """Runs one model: named float/uint8 tensors in, named tensors out.

    Calls are synchronous and thread-safe; services call them from worker threads, never from the event loop.
    """

    kind: str

    @property
    @abstractmethod
    def input_names(self) -> list[str]: ...

    @property
    @abstractmethod
    def output_names(self) -> list[str]: ...

    @abstractmethod
    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...
