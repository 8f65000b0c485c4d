"""YuNet face detection (Wu et al. 2023, libfacedetection) on numpy images: one network call per image, then our
own decoding, score threshold and NMS; knows nothing of gRPC.

The network sees a BGR float copy of the image, shrunk to `max_side` on its longer side when larger, zero-padded at
the bottom and right to multiples of 32. Boxes and landmarks are mapped back to the pixels of the image given to
`detect()`, so every crop is still cut from the original.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import cv2
import numpy as np
from pydantic import Field, TypeAdapter, field_validator
from pydantic.dataclasses import dataclass as params_dataclass

from services.detector.model import Detection, Probability, nms
from services.runtime.modelrepo import PARAMS_CONFIG, LoadedModel, params_of

STRIDES = (8, 16, 32)
ALIGN = 32  # the largest stride: H and W must be multiples of it
INPUT = "input"
OUTPUTS = [f"{head}_{s}" for head in ("cls", "obj", "bbox", "kps") for s in STRIDES]
# YuNet's points → ours (left eye, right eye, nose, mouth left, mouth right, left/right as seen in the image).
# Both go in image order (../shared/weights/README.md), so this is the identity, written out so that it is checked.
LANDMARK_ORDER = np.array([0, 1, 2, 3, 4])


class DetectorFailure(RuntimeError):
    """The network answered with tensors that do not fit YuNet's layout (a wrong file, a broken backend)."""


# A pydantic dataclass, as MtcnnParams and for the same reason: recipes vary it with dataclasses.replace.
@params_dataclass(config=PARAMS_CONFIG)
class YunetParams:
    """YuNet's [params] (model-repo/yunet/config.toml)."""

    # Picks this code for the folder (services/detector/detectors.py); the folder's name does when it is absent.
    architecture: Literal["yunet"] = "yunet"
    # Default for DetectRequest.min_confidence: the score threshold (chosen on WIDER, see card.md).
    min_confidence: Probability = 0.7
    # Candidates below this are dropped whatever a request asks (as MTCNN's stage thresholds do): a request with
    # min_confidence 0 would otherwise send every anchor point to NMS.
    score_floor: Probability = 0.3
    nms_iou: Probability = 0.3
    # At most this many candidates, the best, go to NMS (bounds its cost on crowded or noisy photos).
    top_k: Annotated[int, Field(gt=0)] = 1000
    # Longer side of the copy the network sees; larger photos are shrunk (bounds the cost of huge photos).
    max_side: Annotated[int, Field(gt=0)] = 1600
    # Faces whose box is smaller than this on its larger side (original pixels) are dropped: most boxes YuNet puts
    # on faces this small are loose or on no face at all (card.md), and no crop of them is worth analysing.
    min_face_size: Annotated[float, Field(ge=0.0)] = 0.0
    # A second pass on the image enlarged by this factor (its copy at most `upscale_max_side` long), keeping only
    # the faces smaller than `upscale_max_face` px there (original pixels, the box's larger side); 0 or 1: none.
    upscale: Annotated[float, Field(ge=0.0)] = 0.0
    upscale_max_face: Annotated[float, Field(gt=0.0)] = 32.0
    upscale_max_side: Annotated[int, Field(gt=0)] = 2560
    # Added to each of the five points, in the face's own frame (x along the eyes, y across, in eye distances):
    # moves YuNet's points onto MTCNN's conventions, which every crop template was measured with (card.md).
    landmark_offsets: tuple[tuple[float, float], ...] = ()

    @field_validator("landmark_offsets")
    @classmethod
    def _five_points_or_none(cls, offsets: tuple[tuple[float, float], ...]) -> tuple[tuple[float, float], ...]:
        if offsets and len(offsets) != 5:
            raise ValueError("five (x, y) pairs, or none")
        return offsets

    @classmethod
    def from_config(cls, params: dict[str, Any]) -> YunetParams:
        """A [params] table checked outside a model folder (a pydantic ValidationError, a ValueError, when bad)."""
        return TypeAdapter(cls).validate_python(params)


def shift_landmarks(points: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """(N, 5, 2) points moved by `offsets` (5, 2) given in each face's frame: origin between the eyes, x towards the
    right eye, y perpendicular to it (down for an upright face), one unit the distance between the eyes."""
    eyes = points[:, 1] - points[:, 0]
    across = np.stack([-eyes[:, 1], eyes[:, 0]], axis=1)
    return points + offsets[None, :, :1] * eyes[:, None] + offsets[None, :, 1:] * across[:, None]


def padded_size(height: int, width: int) -> tuple[int, int]:
    return -(-height // ALIGN) * ALIGN, -(-width // ALIGN) * ALIGN


def prepare(image: np.ndarray, scale: float) -> np.ndarray:
    """RGB uint8 (H, W, 3) → the network's input (1, 3, H', W'): float32 BGR 0–255 at `scale` (shrunk with area
    averaging, enlarged bilinearly), zero-padded at the bottom and right to multiples of 32."""
    h, w = image.shape[:2]
    if scale != 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    rh, rw = image.shape[:2]
    ph, pw = padded_size(rh, rw)
    tensor = np.zeros((1, 3, ph, pw), dtype=np.float32)
    tensor[0, :, :rh, :rw] = image[:, :, ::-1].transpose(2, 0, 1)
    return tensor


def _grid(height: int, width: int, stride: int) -> np.ndarray:
    """(N, 2) column, row of every anchor point of one stride, row-major as the outputs are."""
    rows, cols = np.divmod(np.arange((height // stride) * (width // stride)), width // stride)
    return np.stack([cols, rows], axis=1).astype(np.float32)


def decode(
    outputs: dict[str, np.ndarray], index: int, height: int, width: int, threshold: float, top_k: int, nms_iou: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes (N, 4: x1, y1, x2, y2), scores (N,) and landmarks (N, 5, 2) in network pixels of image `index` of the
    batch (H×W its padded size), best first, after the score threshold and NMS."""
    boxes, scores, points = [], [], []
    for stride in STRIDES:
        cls, obj = outputs[f"cls_{stride}"][index, :, 0], outputs[f"obj_{stride}"][index, :, 0]
        grid = _grid(height, width, stride)
        if len(cls) != len(grid):
            raise DetectorFailure(f"cls_{stride} has {len(cls)} points, expected {len(grid)} for {width}×{height}")
        score = np.sqrt(np.clip(cls, 0, 1) * np.clip(obj, 0, 1))
        keep = np.flatnonzero(score >= threshold)
        if len(keep) == 0:
            continue
        cell, bbox = grid[keep], outputs[f"bbox_{stride}"][index, keep]
        centre = (cell + bbox[:, :2]) * stride
        half = np.exp(bbox[:, 2:4]) * stride / 2
        boxes.append(np.concatenate([centre - half, centre + half], axis=1))
        scores.append(score[keep])
        kps = outputs[f"kps_{stride}"][index, keep].reshape(-1, 5, 2)
        points.append((cell[:, None, :] + kps) * stride)
    if not boxes:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32)
    box, score, point = np.concatenate(boxes), np.concatenate(scores), np.concatenate(points)
    if not (np.isfinite(box).all() and np.isfinite(point).all()):
        raise DetectorFailure("the network returned non-finite boxes or landmarks")
    best = np.argsort(-score, kind="stable")[:top_k]
    keep = best[nms(box[best], score[best], nms_iou, offset=0.0)]
    return box[keep], score[keep], point[keep][:, LANDMARK_ORDER]


class YunetDetector:
    def __init__(self, model: LoadedModel) -> None:
        self.config = model.config
        self.net = next(iter(model.backends.values()))
        missing = {INPUT, *OUTPUTS} - {*self.net.input_names, *self.net.output_names}
        if len(model.backends) != 1 or missing:
            raise ValueError(f"{model.config.name}: not a YuNet graph (one file, missing tensors {sorted(missing)})")
        self.params = params_of(model, YunetParams)

    def warm_up(self) -> None:
        """One call on a blank 640×480 photo: it proposes nothing."""
        self.detect(np.zeros((480, 640, 3), np.uint8))

    def detect(self, image: np.ndarray, min_confidence: float | None = None) -> list[Detection]:
        """Faces in an RGB uint8 image (H, W, 3), in that image's pixel coordinates, most confident first."""
        p = self.params
        threshold = max(p.score_floor, p.min_confidence if min_confidence is None else min_confidence)
        h, w = image.shape[:2]
        shrink = min(1.0, p.max_side / max(h, w))
        boxes, scores, points = self._pass(image, shrink, threshold)
        if p.upscale > 1.0:
            boxes, scores, points = self._with_small_faces(image, shrink, threshold, (boxes, scores, points))
        large = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) >= p.min_face_size
        boxes, scores, points = boxes[large], scores[large], points[large]
        if p.landmark_offsets:
            points = shift_landmarks(points, np.array(p.landmark_offsets))
        return [
            Detection(box=boxes[i].astype(np.float32), score=float(scores[i]), landmarks=points[i].astype(np.float32))
            for i in np.argsort(-scores, kind="stable")
        ]

    def _pass(self, image: np.ndarray, scale: float, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        tensor = prepare(image, scale)
        outputs = self.net.run({INPUT: tensor})
        _, _, ph, pw = tensor.shape
        try:
            boxes, scores, points = decode(outputs, 0, ph, pw, threshold, self.params.top_k, self.params.nms_iou)
        except (KeyError, IndexError, ValueError) as exc:  # a tensor missing or of another shape than YuNet's
            raise DetectorFailure(f"the network's outputs do not fit YuNet's layout: {exc!r}") from exc
        return boxes / scale, scores, points / scale

    def _with_small_faces(
        self, image: np.ndarray, shrink: float, threshold: float, first: tuple[np.ndarray, np.ndarray, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The first pass's faces plus the small ones an enlarged copy finds, overlaps resolved by NMS."""
        p = self.params
        scale = min(p.upscale * shrink, p.upscale_max_side / max(image.shape[:2]))
        if scale <= shrink:
            return first
        boxes, scores, points = self._pass(image, scale, threshold)
        small = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) < p.upscale_max_face
        boxes = np.concatenate([first[0], boxes[small]])
        scores = np.concatenate([first[1], scores[small]])
        points = np.concatenate([first[2], points[small]])
        keep = nms(boxes, scores, p.nms_iou, offset=0.0)
        return boxes[keep], scores[keep], points[keep]
