"""Age and gender from one aligned face chip; knows nothing of gRPC.

Two kinds of model folder: ours (`agegender_faceplane`, one graph with both answers, the default) and Cydral's
(`agegender_cydral`, separate age and gender networks that want float tensors).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import cv2
import numpy as np
from pydantic import Field, field_validator

from services.runtime.modelrepo import LoadedModel, ModelParams, params_of


@dataclass(frozen=True)
class AgeGender:
    age: float
    gender: str
    gender_score: float


class AgeGenderModelParams(ModelParams):
    """[params] of Cydral's two networks (model-repo/agegender_cydral/config.toml)."""

    # tensor = (pixel − means) × scale, per RGB channel, for both networks.
    means: tuple[float, float, float]
    scale: float = Field(gt=0.0)
    gender_input_size: int = Field(gt=0)
    # The age in years each of the age net's classes stands for.
    age_weights: list[float] = Field(min_length=2)

    @field_validator("age_weights")
    @classmethod
    def _rising_ages(cls, weights: list[float]) -> list[float]:
        if weights[0] < 0 or any(b <= a for a, b in pairwise(weights)):
            raise ValueError("ages must be non-negative and rise from class to class")
        return weights


class AgeGenderModel:
    """Cydral's two dlib-trained networks."""

    def __init__(self, model: LoadedModel) -> None:
        self.params = params = params_of(model, AgeGenderModelParams)
        self.age_net = model.backends["age"]
        self.gender_net = model.backends["gender"]
        self.labels = model.config.labels
        self.means = np.asarray(params.means, dtype=np.float32)
        self.scale = params.scale
        self.gender_size = params.gender_input_size
        self.age_weights = np.asarray(params.age_weights, dtype=np.float32)

    def _tensor(self, chips: np.ndarray) -> np.ndarray:
        return ((chips.astype(np.float32) - self.means) * self.scale).transpose(0, 3, 1, 2)

    def predict(self, chips: np.ndarray) -> list[AgeGender]:
        """chips: (N, 64, 64, 3) uint8 RGB aligned as the card says; the gender net sees them at 32×32."""
        # The gender chip is the same alignment at half the size: dlib cut both from the same landmarks.
        small = np.stack([cv2.resize(c, (self.gender_size,) * 2, interpolation=cv2.INTER_AREA) for c in chips])
        age_p = self.age_net.run({"images": self._tensor(chips)})["probabilities"]
        gender_p = self.gender_net.run({"images": self._tensor(small)})["probabilities"]
        ages = age_p @ self.age_weights  # the expected age over the 81 classes
        best = gender_p.argmax(axis=1)
        return [
            AgeGender(age=float(a), gender=self.labels[g], gender_score=float(p[g]))
            for a, g, p in zip(ages, best, gender_p, strict=True)
        ]


class AgeGenderHeadsParams(ModelParams):
    """[params] of our one-graph heads (model-repo/agegender_faceplane/config.toml): its tensor names."""

    input: str
    gender_output: str
    age_output: str


class AgeGenderHeads:
    """Our heads on the frozen embedder backbone: one graph, raw uint8 chips in, gender and age out."""

    def __init__(self, model: LoadedModel) -> None:
        self.params = params = params_of(model, AgeGenderHeadsParams)
        self.net = model.backends["model"]
        self.labels = model.config.labels
        self.input = params.input
        self.gender_output = params.gender_output
        self.age_output = params.age_output

    def predict(self, chips: np.ndarray) -> list[AgeGender]:
        out = self.net.run({self.input: np.ascontiguousarray(chips)})
        gender_p, ages = out[self.gender_output], out[self.age_output]
        best = gender_p.argmax(axis=1)
        return [
            AgeGender(age=float(a), gender=self.labels[g], gender_score=float(p[g]))
            for a, g, p in zip(ages, best, gender_p, strict=True)
        ]


def age_gender_model(model: LoadedModel) -> AgeGenderModel | AgeGenderHeads:
    return AgeGenderHeads(model) if "model" in model.backends else AgeGenderModel(model)
