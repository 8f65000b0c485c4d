"""Aligned face crops: a similarity transform that maps the five landmarks onto a canonical template."""

from __future__ import annotations

import cv2
import numpy as np

from services.runtime.geometry import similarity_transform

# The widely used 112×112 five-point template (ArcFace / InsightFace), normalised to the unit square:
# left eye, right eye, nose, mouth left, mouth right.
TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)
TEMPLATE = TEMPLATE_112 / 112.0


def template_points(size: int, padding: float) -> np.ndarray:
    """The template in crop pixels: `padding` (fraction of the face width) of margin on every side."""
    return (TEMPLATE + padding) / (1.0 + 2.0 * padding) * size


def align_face(
    image: np.ndarray, landmarks: np.ndarray, size: int, padding: float = 0.0, template: np.ndarray | None = None
) -> np.ndarray:
    """Warp the face whose five landmarks are given into a size×size crop (RGB uint8); `template` (5×2, fractions
    of the crop side) replaces the standard template and its padding."""
    target = template_points(size, padding) if template is None or len(template) == 0 else np.asarray(template) * size
    matrix = similarity_transform(landmarks, target)
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def resize_whole(image: np.ndarray, size: int) -> np.ndarray:
    """For images that already are an aligned face (skip_detection): just bring them to the crop size."""
    interpolation = cv2.INTER_AREA if min(image.shape[:2]) > size else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interpolation)
