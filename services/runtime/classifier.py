"""An ONNX classifier described entirely by its config: input [params], `labels`, one probabilities output."""

from __future__ import annotations

import numpy as np

from services.runtime.modelrepo import LoadedModel, params_of
from services.runtime.preprocess import InputSpec, to_tensor


class Classifier:
    def __init__(self, model: LoadedModel) -> None:
        self.backend = model.backends["model"]
        self.spec = params_of(model, InputSpec)
        self.labels = model.config.labels
        self.output = self.backend.output_names[0]

    def probabilities(self, crops: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 RGB crops → (N, len(labels)) probabilities."""
        return self.backend.run({self.spec.input_name: to_tensor(crops, self.spec)})[self.output]
