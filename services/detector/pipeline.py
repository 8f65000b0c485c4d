"""What the detector service does with one image: decode once, find faces, cut the crops asked for."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from services.detector.align import cut
from services.detector.decode import decode_image
from services.detector.detectors import FaceDetector
from services.runtime.modelrepo import CropConfig
from services.runtime.tracing import span


@dataclass(frozen=True)
class Face:
    box: np.ndarray  # x1, y1, x2, y2, original-image pixels
    score: float
    landmarks: np.ndarray | None  # (5, 2); None when detection was skipped
    crops: list[np.ndarray] = field(default_factory=list)  # one per requested crop spec
    to_image: list[np.ndarray] = field(default_factory=list)  # each crop's 2×3 affine, crop pixel → image pixel


def cut_face(
    image: np.ndarray,
    box: np.ndarray,
    answered_box: np.ndarray,
    score: float,
    landmarks: np.ndarray | None,
    specs: Sequence[CropConfig],
) -> Face:
    """The face with a crop per spec, cut from the box as the detector found it (the answer's box is clipped to the
    image; the box crops' scaling is about the found box, as the models were evaluated)."""
    cuts = [cut(image, box, landmarks, spec) for spec in specs]
    return Face(answered_box, score, landmarks, [pixels for pixels, _ in cuts], [m for _, m in cuts])


@dataclass(frozen=True)
class DetectionResult:
    width: int
    height: int
    faces: list[Face]


class FacePipeline:
    def __init__(self, detector: FaceDetector, max_pixels: int, max_faces: int) -> None:
        self.detector = detector
        self.max_pixels = max_pixels
        self.max_faces = max_faces

    def run(
        self,
        data: bytes,
        crops: Sequence[CropConfig] = (),
        min_confidence: float | None = None,
        max_faces: int = 0,
        skip_detection: bool = False,
    ) -> DetectionResult:
        # Spans of the call's trace when tracing is on (services/runtime/tracing.py); nothing otherwise.
        with span("decode", {"faceplane.image.bytes": len(data)}) as decoding:
            image = decode_image(data, self.max_pixels)
            h, w = image.shape[:2]
            decoding.set_attributes({"faceplane.image.width": w, "faceplane.image.height": h})
        if skip_detection:
            whole = np.array([0, 0, w, h], dtype=np.float32)
            return DetectionResult(w, h, [cut_face(image, whole, whole, 1.0, None, crops)])
        limit = min(max_faces, self.max_faces) if max_faces > 0 else self.max_faces
        with span("detect") as detecting:
            found = sorted(self.detector.detect(image, min_confidence), key=lambda d: d.area, reverse=True)[:limit]
            detecting.set_attribute("faceplane.faces", len(found))
        bounds = np.array([w, h, w, h], dtype=np.float32)
        with span("crop", {"faceplane.crops": len(found) * len(crops)}):
            faces = [cut_face(image, d.box, np.clip(d.box, 0, bounds), d.score, d.landmarks, crops) for d in found]
        return DetectionResult(w, h, faces)
