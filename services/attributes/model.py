"""Mask and CelebA appearance attributes from one aligned crop; knows nothing of gRPC."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from services.runtime.classifier import Classifier
from services.runtime.modelrepo import LoadedModel
from services.runtime.preprocess import narrow_padding


@dataclass(frozen=True)
class Appearance:
    mask: str
    mask_score: float
    attributes: dict[str, float]


class AttributesModel:
    def __init__(self, attributes: LoadedModel, mask: LoadedModel) -> None:
        self.attributes = Classifier(attributes)
        self.mask = Classifier(mask)
        crop, mask_crop = attributes.config.crop, mask.config.crop
        if crop is None or mask_crop is None or crop.template or mask_crop.template:
            raise ValueError("both models must use the standard template, so one crop can serve both")
        self.padding, self.mask_padding = crop.padding, mask_crop.padding

    def predict(self, crops: np.ndarray) -> list[Appearance]:
        """crops: (N, size, size, 3) uint8 RGB in the attributes model's crop; the mask net gets the tighter middle
        of it that its own crop spec asks for, and each net resizes to its input."""
        attr_p = self.attributes.probabilities(crops)
        mask_p = self.mask.probabilities(narrow_padding(crops, self.padding, self.mask_padding))
        best = mask_p.argmax(axis=1)
        return [
            Appearance(
                mask=self.mask.labels[k],
                mask_score=float(m[k]),
                attributes={name: float(p) for name, p in zip(self.attributes.labels, a, strict=True)},
            )
            for k, m, a in zip(best, mask_p, attr_p, strict=True)
        ]
