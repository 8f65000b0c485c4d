"""Face embeddings (dlib's ResNet under ONNX Runtime) and their comparison; knows nothing of gRPC."""

from __future__ import annotations

import numpy as np

from services.embedder.openset import FmrCalibration
from services.embedder.shape import ChipRefiner
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
        # dlib's own alignment found again inside each crop before the network sees it ([refine] in config.toml).
        self.refiner: ChipRefiner | None = None
        if model.config.refine is not None:
            if model.directory is None:
                raise ValueError(f"{model.config.name}: [refine] needs the model folder for its predictor")
            self.refiner = ChipRefiner.from_config(model.directory, model.config.refine)

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """(N, 150, 150, 3) uint8 RGB crops → (N, dim) L2-normalised float32 embeddings."""
        chips = crops if self.refiner is None else self.refiner(np.asarray(crops, dtype=np.uint8))
        raw = self.backend.run({self.input: np.ascontiguousarray(chips, dtype=np.uint8)})[self.output]
        norms = np.linalg.norm(raw, axis=1, keepdims=True)
        return (raw / np.maximum(norms, 1e-12)).astype(np.float32)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two L2-normalised embeddings, in [-1, 1]."""
    return float(np.clip(np.dot(a, b), -1.0, 1.0))
