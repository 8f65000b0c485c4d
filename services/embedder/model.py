"""Face embeddings (dlib's ResNet under ONNX Runtime) and their comparison; knows nothing of gRPC."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, field_validator

from services.embedder.openset import FmrCalibration
from services.embedder.shape import ChipRefiner
from services.runtime.modelrepo import LoadedModel, ModelParams, params_of


class EmbedderParams(ModelParams):
    """An embedder's [params] (model-repo/dlib_resnet/config.toml)."""

    input: str
    output: str
    embedding_dim: int = Field(gt=0)
    # Cosine similarity at or above which two faces are the same person (calibrated, see card.md).
    threshold: float = Field(gt=0.0, le=1.0)
    # [similarity, per-comparison false-match rate] on dev impostor pairs, for open-set identification.
    fmr_table: list[tuple[float, float]]
    # What the graph does itself, written down for the reader; the code feeds it uint8 NHWC crops, L2-normalises its
    # output and compares by cosine, so these may say only that.
    input_dtype: Literal["uint8"] = "uint8"
    input_layout: Literal["NHWC"] = "NHWC"
    input_range: str = ""
    normalisation_mean_rgb: tuple[float, float, float] | None = None
    normalisation_scale: float | None = Field(default=None, gt=0.0)
    output_normalised: bool = False
    metric: Literal["cosine"] = "cosine"

    @field_validator("fmr_table")
    @classmethod
    def _a_calibration(cls, table: list[tuple[float, float]]) -> list[tuple[float, float]]:
        FmrCalibration.from_table(table)  # rising similarities, falling FMRs in (0, 1]
        return table


class EmbeddingModel:
    def __init__(self, model: LoadedModel) -> None:
        self.params = params = params_of(model, EmbedderParams)
        self.backend = model.backends["model"]
        self.input = params.input
        self.output = params.output
        self.dim = params.embedding_dim
        self.threshold = params.threshold
        self.calibration = FmrCalibration.from_table(params.fmr_table)
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
