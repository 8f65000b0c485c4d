"""MTCNN face detection (P-Net → R-Net → O-Net cascade) on numpy images; knows nothing of gRPC.

Follows the original algorithm (Zhang et al. 2016) as implemented by facenet-pytorch 2.6.0, with one deliberate
difference: candidate windows that cross the image border are zero-padded (as in the original MATLAB code)
instead of clipped, so faces at the edge keep their geometry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import cv2
import numpy as np
from pydantic import Field
from pydantic.dataclasses import dataclass as params_dataclass

from services.runtime.modelrepo import PARAMS_CONFIG, LoadedModel, params_of

Probability = Annotated[float, Field(ge=0.0, le=1.0)]


@dataclass(frozen=True)
class Detection:
    box: np.ndarray  # x1, y1, x2, y2 in pixels of the image given to detect()
    score: float
    landmarks: np.ndarray  # (5, 2): left eye, right eye, nose, mouth left, mouth right

    @property
    def area(self) -> float:
        return float((self.box[2] - self.box[0]) * (self.box[3] - self.box[1]))


# A pydantic dataclass (checked like every [params] class, see params_of) that stays a dataclass: recipes vary one
# field with dataclasses.replace (model-repo/recipes/detector_eval.py).
@params_dataclass(config=PARAMS_CONFIG)
class MtcnnParams:
    """MTCNN's [params] (model-repo/mtcnn/config.toml)."""

    # Picks this code for the folder (services/detector/detectors.py); the folder's name does when it is absent.
    architecture: Literal["mtcnn"] = "mtcnn"
    min_face_size: Annotated[float, Field(gt=0.0)] = 20.0
    # P-, R- and O-Net's score thresholds.
    thresholds: tuple[Probability, Probability, Probability] = (0.6, 0.7, 0.7)
    # The pyramid's step from one level to the next: below 1, or the pyramid never ends.
    factor: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.709
    # Images are shrunk so their longer side is at most this before the pyramid (bounds the cost of huge photos).
    max_side: Annotated[int, Field(gt=0)] = 1600
    min_confidence: Probability = 0.9
    # When nothing is found, look again with a replicated border of this fraction of the shorter side on every side:
    # close-ups whose face runs past the frame (MTCNN needs to see the whole face). 0 disables it.
    retry_border: Annotated[float, Field(ge=0.0)] = 0.0


def _normalise(patches: np.ndarray) -> np.ndarray:
    """uint8 NHWC RGB -> float32 NCHW in [-1, 1) as the nets were trained."""
    return ((patches.astype(np.float32) - 127.5) * 0.0078125).transpose(0, 3, 1, 2)


def nms(
    boxes: np.ndarray, scores: np.ndarray, threshold: float, method: str = "union", offset: float = 1.0
) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression (boxes x1, y1, x2, y2). `offset` 1 is MTCNN's inclusive
    pixel convention (a box's width is x2 − x1 + 1); 0 treats the corners as continuous coordinates."""
    if len(boxes) == 0:
        return np.empty(0, dtype=np.int64)
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    area = (x2 - x1 + offset) * (y2 - y1 + offset)
    order = np.argsort(scores)[::-1]
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + offset)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + offset)
        inter = w * h
        denom = np.minimum(area[i], area[rest]) if method == "min" else area[i] + area[rest] - inter
        order = rest[inter / denom <= threshold]
    return np.asarray(keep, dtype=np.int64)


def _square(boxes: np.ndarray) -> np.ndarray:
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def _regress(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    out[:, 0] += reg[:, 0] * w
    out[:, 1] += reg[:, 1] * h
    out[:, 2] += reg[:, 2] * w
    out[:, 3] += reg[:, 3] * h
    return out


def _crop_patches(image: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Cut each (1-based, inclusive) box out of the image, zero-padding beyond its border, resized to size×size."""
    h, w = image.shape[:2]
    patches = np.zeros((len(boxes), size, size, 3), dtype=np.uint8)
    for k, (x1, y1, x2, y2) in enumerate(np.trunc(boxes[:, :4]).astype(np.int64)):
        x0, y0 = x1 - 1, y1 - 1
        pw, ph = x2 - x0, y2 - y0
        if pw <= 0 or ph <= 0:
            continue
        patch = np.zeros((ph, pw, 3), dtype=np.uint8)
        sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x2, w), min(y2, h)
        if sx1 > sx0 and sy1 > sy0:
            patch[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = image[sy0:sy1, sx0:sx1]
        patches[k] = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
    return patches


class MtcnnDetector:
    def __init__(self, model: LoadedModel) -> None:
        self.params = params_of(model, MtcnnParams)
        self.config = model.config
        self.pnet = model.backends["pnet"]
        self.rnet = model.backends["rnet"]
        self.onet = model.backends["onet"]

    def warm_up(self) -> None:
        """Each net once: the P-Net pyramid of a blank 640×480 photo (it proposes nothing), then R- and O-Net on one
        blank window each."""
        blank, window = np.zeros((480, 640, 3), np.uint8), np.array([[0, 0, 47, 47, 0]], np.float32)
        self._stage_proposals(blank)
        self._stage_refine(blank, window)
        self._stage_output(blank, window)

    def detect(self, image: np.ndarray, min_confidence: float | None = None) -> list[Detection]:
        """Faces in an RGB uint8 image (H, W, 3), in that image's pixel coordinates, most confident first."""
        found = self._detect(image, min_confidence)
        if found or self.params.retry_border <= 0:
            return found
        # Relative to the shorter side: close-ups are roughly square, and a thin strip must not balloon.
        border = round(self.params.retry_border * min(image.shape[:2]))
        if border < 1:
            return found
        padded = cv2.copyMakeBorder(image, border, border, border, border, cv2.BORDER_REPLICATE)
        shift = np.array([border, border], dtype=np.float32)
        return [
            Detection(box=d.box - np.tile(shift, 2), score=d.score, landmarks=d.landmarks - shift)
            for d in self._detect(padded, min_confidence)
        ]

    def _detect(self, image: np.ndarray, min_confidence: float | None) -> list[Detection]:
        threshold = self.params.min_confidence if min_confidence is None else min_confidence
        h, w = image.shape[:2]
        shrink = min(1.0, self.params.max_side / max(h, w))
        size = (max(1, round(w * shrink)), max(1, round(h * shrink)))
        work = image if shrink == 1.0 else cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        boxes, points = self._cascade(work)
        if shrink != 1.0:
            boxes[:, :4] /= shrink
            points /= shrink
        return [
            Detection(
                box=boxes[i, :4].astype(np.float32), score=float(boxes[i, 4]), landmarks=points[i].astype(np.float32)
            )
            for i in np.argsort(-boxes[:, 4])
            if boxes[i, 4] >= threshold
        ]

    def _cascade(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        none = (np.zeros((0, 5), np.float32), np.zeros((0, 5, 2), np.float32))
        boxes = self._stage_proposals(image)
        if len(boxes) == 0:
            return none
        boxes = self._stage_refine(image, boxes)
        if len(boxes) == 0:
            return none
        return self._stage_output(image, boxes)

    def _scales(self, h: int, w: int) -> list[float]:
        m = 12.0 / self.params.min_face_size
        side = min(h, w) * m
        scales = []
        scale = m
        while side >= 12:
            scales.append(scale)
            scale *= self.params.factor
            side *= self.params.factor
        return scales

    def _stage_proposals(self, image: np.ndarray) -> np.ndarray:
        """P-Net over the image pyramid: candidate squares (x1, y1, x2, y2, score)."""
        h, w = image.shape[:2]
        found = []
        # Each level is resized from the one before, bilinear: 30× cheaper than area-averaging the whole image for
        # every level (the largest CPU cost of a detection), and on WIDER it finds more faces with fewer false
        # positives (model-repo/mtcnn/card.md).
        resized = image
        for scale in self._scales(h, w):
            resized = cv2.resize(resized, (int(w * scale + 1), int(h * scale + 1)), interpolation=cv2.INTER_LINEAR)
            out = self.pnet.run({"input": _normalise(resized[None])})
            prob = out["probability"][0, 1]
            reg = out["regression"][0]
            ys, xs = np.nonzero(prob >= self.params.thresholds[0])
            if len(ys) == 0:
                continue
            cells = np.stack([xs, ys], axis=1).astype(np.float32)
            q1 = np.floor((2 * cells + 1) / scale)
            q2 = np.floor((2 * cells + 12) / scale)
            cand = np.concatenate([q1, q2, prob[ys, xs, None], reg[:, ys, xs].T], axis=1)
            found.append(cand[nms(cand[:, :4], cand[:, 4], 0.5)])
        if not found:
            return np.zeros((0, 5), np.float32)
        cand = np.concatenate(found)
        cand = cand[nms(cand[:, :4], cand[:, 4], 0.7)]
        bw = cand[:, 2] - cand[:, 0]
        bh = cand[:, 3] - cand[:, 1]
        refined = np.stack(
            [
                cand[:, 0] + cand[:, 5] * bw,
                cand[:, 1] + cand[:, 6] * bh,
                cand[:, 2] + cand[:, 7] * bw,
                cand[:, 3] + cand[:, 8] * bh,
                cand[:, 4],
            ],
            axis=1,
        )
        return _square(refined)

    def _stage_refine(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        out = self.rnet.run({"input": _normalise(_crop_patches(image, boxes, 24))})
        score = out["probability"][:, 1]
        keep = score > self.params.thresholds[1]
        boxes = np.concatenate([boxes[keep, :4], score[keep, None]], axis=1)
        reg = out["regression"][keep]
        pick = nms(boxes[:, :4], boxes[:, 4], 0.7)
        return _square(_regress(boxes[pick], reg[pick]))

    def _stage_output(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = self.onet.run({"input": _normalise(_crop_patches(image, boxes, 48))})
        score = out["probability"][:, 1]
        keep = score > self.params.thresholds[2]
        boxes = np.concatenate([boxes[keep, :4], score[keep, None]], axis=1)
        marks = out["landmarks"][keep]
        bw = boxes[:, 2] - boxes[:, 0] + 1
        bh = boxes[:, 3] - boxes[:, 1] + 1
        points = np.stack(
            [bw[:, None] * marks[:, :5] + boxes[:, 0:1] - 1, bh[:, None] * marks[:, 5:] + boxes[:, 1:2] - 1], axis=2
        )
        boxes = _regress(boxes, out["regression"][keep])
        pick = nms(boxes[:, :4], boxes[:, 4], 0.7, method="min")
        return boxes[pick], points[pick]
