"""Passive liveness of a face from one photo: a real face, or a presentation attack (a printed photo, a screen held
up to the camera). MiniFASNet's networks (model-repo/minifasnet/card.md), each on its own box crop of the face;
the score is the mean of their P(real). Knows nothing of gRPC."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import Field

from services.runtime.crops import Crops
from services.runtime.modelrepo import CropConfig, LoadedModel, ModelConfigError, ModelParams, params_of

REAL, SPOOF = "real", "spoof"


class LivenessParams(ModelParams):
    """A liveness model's [params] (model-repo/minifasnet/config.toml)."""

    # Per [files] key: the factor by which that network's crop scales the detector's box about its centre. Each
    # network's crop is a box crop (CropSpec BOX) of input_size × input_size, `inside` (kept in the photo, as
    # upstream's AffineCrop), neither squared nor turned: `LivenessModel.specs`.
    scales: dict[str, float]
    input_size: int = Field(gt=0, le=1024)
    # What every graph takes and answers: `input_name` uint8 (N, size, size, 3) RGB raw pixels, `output_name` a
    # softmax (N, len(labels)) whose class `real_index` is a real face.
    input_name: str
    input_dtype: Literal["uint8"]
    input_layout: Literal["NHWC"]
    channel_order: Literal["RGB"]
    output_name: str
    real_index: int = Field(ge=0)
    # How the networks' P(real) become one score: their mean.
    fusion: Literal["mean"]
    # A face is real when its score is at least this (the service's THRESHOLD setting overrides it).
    threshold: float = Field(ge=0.0, le=1.0)


@dataclass(frozen=True)
class LivenessScore:
    label: str  # REAL or SPOOF
    score: float  # the probability that the face is real, 0..1


class LivenessModel:
    """The networks of a liveness model folder, each with its box crop; `predict` takes the faces' crops of every
    network (Crops, by spec name) and answers one LivenessScore per face."""

    def __init__(self, model: LoadedModel, threshold: float | None = None) -> None:
        self.model = model
        self.params = params_of(model, LivenessParams)
        where = model.directory / "config.toml" if model.directory else model.config.name
        if set(self.params.scales) != set(model.config.files):
            raise ModelConfigError(f"{where} [params] scales: one per [files] key ({', '.join(model.config.files)})")
        labels = model.config.labels
        if not 0 <= self.params.real_index < len(labels) or labels[self.params.real_index] != REAL:
            raise ModelConfigError(f"{where} [params] real_index: labels[{self.params.real_index}] is not {REAL!r}")
        self.threshold = self.params.threshold if threshold is None else threshold
        self.real_index = self.params.real_index
        # In [files] order, each named after its model and network: the name stands for the geometry (the detector
        # cuts one crop per name), and no other model's crop has these.
        self.networks = list(model.config.files)
        self.specs = [
            CropConfig(
                name=f"{model.config.name}_{key}",
                kind="box",
                size=self.params.input_size,
                scale=self.params.scales[key],
                inside=True,
            )
            for key in self.networks
        ]

    @property
    def scales(self) -> dict[str, float]:
        return {key: self.params.scales[key] for key in self.networks}

    def probabilities(self, batches: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Per network (its [files] key): its softmax (N, classes) of its crops (N, size, size, 3) uint8 RGB, run in
        chunks of the model's max_batch_size (what a model server takes in one call)."""
        chunk = self.model.config.batching.max_batch_size
        out = {}
        for key in self.networks:
            backend, x = self.model.backends[key], batches[key]
            parts = [
                backend.run({self.params.input_name: x[i : i + chunk]})[self.params.output_name]
                for i in range(0, len(x), chunk)
            ]
            out[key] = np.concatenate(parts) if parts else np.zeros((0, len(self.model.config.labels)), np.float32)
        return out

    def scores(self, batches: dict[str, np.ndarray]) -> np.ndarray:
        """(N,) the mean over the networks of P(real)."""
        probs = self.probabilities(batches)
        return np.mean([probs[key][:, self.real_index] for key in self.networks], axis=0)

    def predict(self, crops: Crops) -> list[LivenessScore]:
        batches = {key: crops.batches[spec.name] for key, spec in zip(self.networks, self.specs, strict=True)}
        return [
            LivenessScore(label=REAL if s >= self.threshold else SPOOF, score=float(s)) for s in self.scores(batches)
        ]
