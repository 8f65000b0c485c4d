"""Face embeddings (dlib's ResNet under ONNX Runtime) and their comparison; knows nothing of gRPC."""

from __future__ import annotations

import numpy as np

from services.embedder.openset import FmrCalibration
from services.runtime.modelrepo import LoadedModel


class EmbeddingModel:
    def __init__(self, model: LoadedModel) -> None:
        params = model.config.params
        self.backend = model.backends["model"]
        self.input = str(params["input"])
        self.output = str(params["output"])
        self.dim = int(params["embedding_dim"])
        # Cosine similarity at or above which two faces are the same person (calibrated, see card.md).
        self.threshold = float(params["threshold"])
        # Similarity → per-comparison false-match rate on dev impostor pairs, for open-set identification.
        self.calibration = FmrCalibration.from_table(params["fmr_table"])

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """(N, 150, 150, 3) uint8 RGB crops → (N, dim) L2-normalised float32 embeddings."""
        raw = self.backend.run({self.input: np.ascontiguousarray(crops, dtype=np.uint8)})[self.output]
        norms = np.linalg.norm(raw, axis=1, keepdims=True)
        return (raw / np.maximum(norms, 1e-12)).astype(np.float32)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two L2-normalised embeddings, in [-1, 1]."""
    return float(np.clip(np.dot(a, b), -1.0, 1.0))
