"""Aligned uint8 crops → the tensor a model wants, as the [params] of its config.toml describe it."""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np
from pydantic import Field

from services.runtime.modelrepo import ModelParams


class InputSpec(ModelParams):
    """A classifier's [params] (emotion, attributes and mask models): all it takes to turn crops into its input."""

    input_name: str = "input"
    input_size: int = Field(gt=0)
    layout: Literal["NHWC", "NCHW"] = "NCHW"
    grey: bool = False
    # tensor = pixel (0..255) * scale + offset
    scale: float = 1.0
    offset: float = 0.0


def to_tensor(crops: np.ndarray, spec: InputSpec) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB → float32 in the model's size, colour, normalisation and layout."""
    size = spec.input_size
    if crops.shape[1:3] != (size, size):
        interpolation = cv2.INTER_AREA if crops.shape[1] > size else cv2.INTER_LINEAR
        crops = np.stack([cv2.resize(c, (size, size), interpolation=interpolation) for c in crops])
    x = crops.astype(np.float32)
    if spec.grey:
        x = (x @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]
    x = x * spec.scale + spec.offset
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2) if spec.layout == "NCHW" else x)


def narrow_padding(crops: np.ndarray, padding: float, target_padding: float) -> np.ndarray:
    """The middle of crops cut with the standard template and `padding`: what a crop with the smaller
    `target_padding` would show (same alignment, fewer pixels; the model's own input size is applied later)."""
    if target_padding > padding:
        raise ValueError(f"cannot widen a crop from padding {padding} to {target_padding}")
    size = crops.shape[1]
    # The face spans [p, 1 + p] / (1 + 2p) of a crop with padding p.
    start = (padding - target_padding) / (1 + 2 * padding) * size
    end = size - start
    lo, hi = round(start), round(end)
    return np.ascontiguousarray(crops[:, lo:hi, lo:hi])
