"""numpy ↔ FaceCrop: the one place aligned faces cross the wire, checked on the way in."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from faceplane.v1 import common_pb2
from pydantic import ValidationError

from services.runtime.error_codes import ErrorCode
from services.runtime.errors import ServiceError
from services.runtime.modelrepo import CropConfig

MAX_CROPS_PER_CALL = 256


class CropError(ServiceError, ValueError):
    """A crop that does not match what the model needs: answered INVALID_ARGUMENT, `invalid_crop`."""

    code = ErrorCode.INVALID_CROP


class CropSpecError(CropError):
    """A crop specification the detector cannot cut: answered INVALID_ARGUMENT, `invalid_crop_spec`."""

    code = ErrorCode.INVALID_CROP_SPEC


def crop_to_proto(spec: str, pixels: np.ndarray) -> common_pb2.FaceCrop:
    h, w = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    return common_pb2.FaceCrop(
        spec=spec, width=w, height=h, channels=channels, pixels=np.ascontiguousarray(pixels, dtype=np.uint8).tobytes()
    )


def crop_from_proto(crop: common_pb2.FaceCrop, expected: CropConfig | None = None) -> np.ndarray:
    if expected is not None and (crop.width, crop.height) != (expected.size, expected.size):
        raise CropError(f"crop is {crop.width}×{crop.height}, the model needs {expected.size}×{expected.size}")
    if crop.channels != 3:
        raise CropError(f"crop has {crop.channels} channels, RGB (3) is required")
    if crop.width <= 0 or crop.height <= 0 or len(crop.pixels) != crop.width * crop.height * 3:
        raise CropError(f"crop pixel data ({len(crop.pixels)} bytes) does not match {crop.width}×{crop.height}×3")
    return np.frombuffer(crop.pixels, dtype=np.uint8).reshape(crop.height, crop.width, 3)


def crops_to_batch(crops: Sequence[common_pb2.FaceCrop], expected: CropConfig) -> np.ndarray:
    """A (N, size, size, 3) uint8 batch from the request's crops."""
    if not crops:
        raise CropError("no crops in the request")
    if len(crops) > MAX_CROPS_PER_CALL:
        raise CropError(f"{len(crops)} crops in one call, at most {MAX_CROPS_PER_CALL}")
    return np.stack([crop_from_proto(c, expected) for c in crops])


def spec_to_proto(crop: CropConfig) -> common_pb2.CropSpec:
    return common_pb2.CropSpec(name=crop.name, size=crop.size, padding=crop.padding, template=crop.flat_template())


def spec_from_proto(spec: common_pb2.CropSpec) -> CropConfig:
    """The crop a caller asks for, checked (raises CropSpecError)."""
    if len(spec.template) not in (0, 10):
        raise CropSpecError("a crop template has exactly 10 numbers (5 x, y pairs)")
    template = list(zip(spec.template[0::2], spec.template[1::2], strict=True))
    try:
        return CropConfig(name=spec.name, size=spec.size, padding=spec.padding, template=template)
    except ValidationError as exc:
        raise CropSpecError(str(exc.errors()[0]["msg"])) from exc
