"""Seven FER-2013 emotions from one aligned crop; knows nothing of gRPC."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from services.runtime.classifier import Classifier
from services.runtime.modelrepo import LoadedModel

FER_LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


@dataclass(frozen=True)
class EmotionScores:
    label: str
    scores: dict[str, float]


class EmotionModel:
    def __init__(self, model: LoadedModel) -> None:
        self.classifier = Classifier(model)
        if sorted(self.classifier.labels) != sorted(FER_LABELS):
            raise ValueError(f"{model.config.name} labels {self.classifier.labels} are not the seven FER-2013 classes")

    def predict(self, crops: np.ndarray) -> list[EmotionScores]:
        probs = self.classifier.probabilities(crops)
        labels = self.classifier.labels
        return [
            EmotionScores(
                label=labels[int(p.argmax())], scores={name: float(v) for name, v in zip(labels, p, strict=True)}
            )
            for p in probs
        ]
