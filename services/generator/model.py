"""Faces from latent vectors (our DCGAN under ONNX Runtime); the same seed always gives the same faces."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from services.runtime.modelrepo import LoadedModel, ModelParams, params_of

MAX_COUNT = 64


class GeneratorParams(ModelParams):
    """A generator's [params] (model-repo/dcgan_faces/config.toml)."""

    latent_dim: int = Field(gt=0)
    input_name: str
    output_name: str
    # The side of the faces the graph returns, for the reader: the output's shape is the graph's.
    image_size: int | None = Field(default=None, gt=0)


class FaceGenerator:
    def __init__(self, model: LoadedModel) -> None:
        self.params = params = params_of(model, GeneratorParams)
        self.backend = model.backends["model"]
        self.latent_dim = params.latent_dim
        self.input = params.input_name
        self.output = params.output_name

    def generate(self, count: int, seed: int) -> np.ndarray:
        """(count, H, W, 3) uint8 RGB faces for latent vectors drawn from N(0, 1) with `seed`."""
        if not 1 <= count <= MAX_COUNT:
            raise ValueError(f"count must be 1..{MAX_COUNT}, got {count}")
        latent = np.random.default_rng(seed).standard_normal((count, self.latent_dim)).astype(np.float32)
        images = self.backend.run({self.input: latent})[self.output]
        return np.clip(np.rint(images), 0, 255).astype(np.uint8)
