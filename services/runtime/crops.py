"""numpy ↔ FaceCrop and CropSpec: the one place crops cross the wire, checked on the way in."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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


def crop_to_proto(spec: str, pixels: np.ndarray, to_image: np.ndarray | None = None) -> common_pb2.FaceCrop:
    """`to_image`: the 2×3 affine from crop pixels to original-image pixels (FaceCrop.to_image), where the pixels
    are a crop of an image."""
    h, w = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    return common_pb2.FaceCrop(
        spec=spec,
        width=w,
        height=h,
        channels=channels,
        pixels=np.ascontiguousarray(pixels, dtype=np.uint8).tobytes(),
        to_image=[] if to_image is None else np.asarray(to_image, dtype=np.float64).reshape(6).tolist(),
    )


def to_image_of(crop: common_pb2.FaceCrop) -> np.ndarray:
    """The crop's 2×3 affine from its pixels (x, y, 1) to original-image pixels; CropError where it has none."""
    if len(crop.to_image) != 6:
        raise CropError(f"crop {crop.spec!r} has {len(crop.to_image)} to_image numbers, a 2×3 affine (6) is required")
    return np.array(crop.to_image, dtype=np.float64).reshape(2, 3)


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


@dataclass(frozen=True)
class Crops:
    """One request's crops for a service that takes several per face (or needs to know where they sit): per spec
    name, in the service's spec order, the faces' crops and where each lies in the original image."""

    batches: dict[str, np.ndarray]  # spec name → (N, size, size, 3) uint8, one row per face, in request order
    to_image: dict[str, np.ndarray]  # spec name → (N, 2, 3) float64: crop pixel (x, y, 1) → image pixel

    def __len__(self) -> int:  # the faces
        return len(next(iter(self.batches.values())))


def crops_to_batches(crops: Sequence[common_pb2.FaceCrop], specs: Sequence[CropConfig]) -> Crops:
    """The request's crops, face-major (face 0 spec 0, face 0 spec 1, …, face 1 spec 0, …), as Crops; each crop
    must name its spec, match its size and carry its to_image (CropError otherwise)."""
    if not specs:
        raise ValueError("a service takes at least one crop spec")
    if not crops:
        raise CropError("no crops in the request")
    if len(crops) % len(specs):
        raise CropError(f"{len(crops)} crops is not a whole number of faces of {len(specs)} crops each")
    faces = len(crops) // len(specs)
    if faces > MAX_CROPS_PER_CALL:
        raise CropError(f"{faces} faces in one call, at most {MAX_CROPS_PER_CALL}")
    for i, crop in enumerate(crops):
        expected = specs[i % len(specs)].name
        if crop.spec != expected:
            raise CropError(f"crop {i} is of spec {crop.spec!r}, the service takes {expected!r} there")
    of_spec = {s.name: crops[k :: len(specs)] for k, s in enumerate(specs)}
    return Crops(
        batches={s.name: np.stack([crop_from_proto(c, s) for c in of_spec[s.name]]) for s in specs},
        to_image={name: np.stack([to_image_of(c) for c in cs]) for name, cs in of_spec.items()},
    )


def spec_to_proto(crop: CropConfig) -> common_pb2.CropSpec:
    if crop.kind == "box":
        return common_pb2.CropSpec(
            name=crop.name,
            kind=common_pb2.CropSpec.BOX,
            size=crop.size,
            scale=crop.scale,
            square=crop.square,
            level_eyes=crop.level_eyes,
            inside=crop.inside,
        )
    return common_pb2.CropSpec(name=crop.name, size=crop.size, padding=crop.padding, template=crop.flat_template())


_KINDS = {common_pb2.CropSpec.ALIGNED: "aligned", common_pb2.CropSpec.BOX: "box"}


def spec_from_proto(spec: common_pb2.CropSpec) -> CropConfig:
    """The crop a caller asks for, checked (raises CropSpecError)."""
    if spec.kind not in _KINDS:
        raise CropSpecError(f"unknown crop kind {spec.kind}")
    if len(spec.template) not in (0, 10):
        raise CropSpecError("a crop template has exactly 10 numbers (5 x, y pairs)")
    template = list(zip(spec.template[0::2], spec.template[1::2], strict=True))
    kind = _KINDS[spec.kind]
    # proto3 sends an unset scale as 0: an aligned crop has none (1), a box crop must give its own (> 0).
    scale = spec.scale if kind == "box" or spec.scale else 1.0
    try:
        return CropConfig(
            name=spec.name,
            kind=kind,
            size=spec.size,
            padding=spec.padding,
            template=template,
            scale=scale,
            square=spec.square,
            level_eyes=spec.level_eyes,
            inside=spec.inside,
        )
    except ValidationError as exc:
        raise CropSpecError(str(exc.errors()[0]["msg"])) from exc
