"""Recognition quality of an aligned face crop from cheap image measures (numpy only); knows nothing of gRPC.

Each crop gives a few measures of its face interior (the `region` of the crop, between brows and chin): the
sharpness (variance of the Laplacian of the grey image, as log10), the brightness (mean luma), the contrast, the
shares of under- and over-exposed pixels and the left-right asymmetry (a turned or half-lit face). `sharpness` and
`brightness` are reported as they are (on 0..1); `score` is a logistic model over the standardised measures, trained by
model-repo/recipes/train_quality.py to estimate how well the face matches other photos of the same person through the
embedder (model-repo/quality_faceplane/card.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import Field, model_validator

from services.runtime.modelrepo import LoadedModel, ModelParams, params_of

# ITU-R BT.601 luma, as the grey classifiers use (services/runtime/preprocess.py).
LUMA = np.array([0.299, 0.587, 0.114], np.float32)
# The measures a model may use, in the order `measures` computes them.
MEASURES = (
    "log_laplacian",
    "log_laplacian_sq",
    "brightness",
    "brightness_dev_sq",
    "contrast",
    "underexposed",
    "overexposed",
    "asymmetry",
)


class QualityParams(ModelParams):
    """A quality model's [params] (model-repo/quality_faceplane/config.toml)."""

    # The face interior, x0, y0, x1, y1 as fractions of the crop side: what every measure looks at.
    region: tuple[float, float, float, float]
    # log10 of the Laplacian's variance that maps to sharpness 0 and to 1 (linear between, clipped).
    sharpness_log10: tuple[float, float]
    # Luma (0..255) at or below which a pixel is under-exposed, at or above which over-exposed.
    dark: float = Field(ge=0.0, le=255.0)
    bright: float = Field(ge=0.0, le=255.0)
    # The score: sigmoid(bias + Σ weight · (measure − mean) / scale) over the named measures.
    features: list[str]
    mean: list[float]
    scale: list[float]
    weights: list[float]
    bias: float

    @model_validator(mode="after")
    def _one_value_per_feature(self) -> QualityParams:
        unknown = sorted(set(self.features) - set(MEASURES))
        if unknown:
            raise ValueError(f"features: unknown measures {unknown}; choose from {', '.join(MEASURES)}")
        if not len(self.features) == len(self.mean) == len(self.scale) == len(self.weights):
            raise ValueError("features, mean, scale and weights must have one value per feature")
        if any(s <= 0 for s in self.scale):
            raise ValueError("scale: every value must be positive")
        x0, y0, x1, y1 = self.region
        if not (0.0 <= x0 < x1 <= 1.0 and 0.0 <= y0 < y1 <= 1.0):
            raise ValueError("region: x0 < x1 and y0 < y1, fractions of the crop side")
        if not self.sharpness_log10[0] < self.sharpness_log10[1]:
            raise ValueError("sharpness_log10: the value for 0 must be below the value for 1")
        return self


@dataclass(frozen=True)
class QualityScores:
    score: float
    sharpness: float
    brightness: float


def grey(crops: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB → (N, H, W) float32 luma, 0..255."""
    return np.asarray(crops, np.float32) @ LUMA


def laplacian_variance(image: np.ndarray) -> np.ndarray:
    """Variance of the 4-neighbour Laplacian of each (N, H, W) grey image: high for detail, low for blur."""
    lap = (
        image[:, 1:-1, :-2] + image[:, 1:-1, 2:] + image[:, :-2, 1:-1] + image[:, 2:, 1:-1] - 4.0 * image[:, 1:-1, 1:-1]
    )
    return lap.reshape(len(image), -1).var(axis=1)


def measures(crops: np.ndarray, params: QualityParams) -> dict[str, np.ndarray]:
    """Every measure of MEASURES for each crop of an (N, size, size, 3) uint8 batch, each an (N,) array."""
    luma = grey(crops)
    size = luma.shape[1]
    x0, y0, x1, y1 = (round(f * size) for f in params.region)
    face = luma[:, y0:y1, x0:x1]
    flat = face.reshape(len(face), -1)
    log_lap = np.log10(laplacian_variance(face) + 1.0)
    brightness = flat.mean(axis=1) / 255.0
    contrast = flat.std(axis=1) / 255.0
    # Mirrored about the crop's centre line (the template is symmetric): a frontal, evenly lit face differs little.
    mirrored = luma[:, y0:y1, size - x1 : size - x0][:, :, ::-1]
    asymmetry = np.abs(face - mirrored).reshape(len(face), -1).mean(axis=1) / 255.0
    return {
        "log_laplacian": log_lap,
        "log_laplacian_sq": log_lap**2,
        "brightness": brightness,
        "brightness_dev_sq": (brightness - 0.5) ** 2,
        "contrast": contrast,
        "underexposed": (flat <= params.dark).mean(axis=1),
        "overexposed": (flat >= params.bright).mean(axis=1),
        "asymmetry": asymmetry,
    }


def sharpness_of(log_laplacian: np.ndarray, params: QualityParams) -> np.ndarray:
    low, high = params.sharpness_log10
    return np.clip((log_laplacian - low) / (high - low), 0.0, 1.0)


def score_of(values: dict[str, np.ndarray], params: QualityParams) -> np.ndarray:
    x = np.stack([values[name] for name in params.features], axis=1)
    z = (x - np.asarray(params.mean)) / np.asarray(params.scale)
    logit = params.bias + z @ np.asarray(params.weights)
    return 1.0 / (1.0 + np.exp(-np.clip(logit, -50.0, 50.0)))


class QualityModel:
    def __init__(self, model: LoadedModel) -> None:
        self.params = params_of(model, QualityParams)

    def predict(self, crops: np.ndarray) -> list[QualityScores]:
        values = measures(crops, self.params)
        scores = score_of(values, self.params)
        sharpness = sharpness_of(values["log_laplacian"], self.params)
        return [
            QualityScores(score=float(q), sharpness=float(s), brightness=float(b))
            for q, s, b in zip(scores, sharpness, values["brightness"], strict=True)
        ]
