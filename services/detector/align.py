"""The crops the detector cuts of a face, each with where it lies in the image (`to_image`, crop pixel → image
pixel, both as pixel indices: OpenCV's convention, the landmarks' too):

- aligned: a similarity transform that maps the five landmarks onto a canonical template;
- box: the face box made square, scaled about its centre, turned level with the eyes, resized to the crop size;
  kept inside the image as MiniFASNet's AffineCrop keeps it, or with the image's border replicated outside it.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from services.runtime.geometry import similarity_transform
from services.runtime.modelrepo import CropConfig

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


def aligned_crop(
    image: np.ndarray, landmarks: np.ndarray, size: int, padding: float = 0.0, template: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Warp the face whose five landmarks are given into a size×size crop (RGB uint8); `template` (5×2, fractions
    of the crop side) replaces the standard template and its padding. With its to_image, the warp's inverse."""
    target = template_points(size, padding) if template is None or len(template) == 0 else np.asarray(template) * size
    matrix = similarity_transform(landmarks, target)
    pixels = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return pixels, cv2.invertAffineTransform(matrix)


def align_face(
    image: np.ndarray, landmarks: np.ndarray, size: int, padding: float = 0.0, template: np.ndarray | None = None
) -> np.ndarray:
    """aligned_crop's pixels alone."""
    return aligned_crop(image, landmarks, size, padding, template)[0]


def resize_whole(image: np.ndarray, size: int) -> np.ndarray:
    """For images that already are an aligned face (skip_detection): just bring them to the crop size."""
    interpolation = cv2.INTER_AREA if min(image.shape[:2]) > size else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interpolation)


def resize_matrix(x1: float, y1: float, x2: float, y2: float, size: int) -> np.ndarray:
    """to_image of cv2.resize of image[y1:y2, x1:x2] to size×size: pixel centres map onto pixel centres."""
    sx, sy = (x2 - x1) / size, (y2 - y1) / size
    return np.array([[sx, 0.0, x1 + 0.5 * sx - 0.5], [0.0, sy, y1 + 0.5 * sy - 0.5]])


# ---------------------------------------------------------------------------------------------------------------
# Box crops


def box_frame(box: np.ndarray, scale: float, square: bool) -> tuple[np.ndarray, tuple[float, float]]:
    """The centre (x, y) of the box (x1, y1, x2, y2, corner coordinates) and its sides scaled by `scale`, made
    square on the longer side first when `square` (MediaPipe's square_long)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    width, height = x2 - x1, y2 - y1
    if square:
        width = height = max(width, height)
    return np.array([(x1 + x2) / 2, (y1 + y2) / 2]), (scale * width, scale * height)


def eye_angle(eyes: np.ndarray) -> float:
    """The eye line's angle (radians, clockwise on screen) from the eye on the image's left to the one on its right."""
    (lx, ly), (rx, ry) = eyes[0], eyes[1]
    return math.atan2(ry - ly, rx - lx)


def crop_matrix(centre: np.ndarray, sides: tuple[float, float], angle: float, size: int) -> np.ndarray:
    """2×3 affine from crop pixel indices to image pixel indices (cv2's convention: a pixel's index is its centre;
    `centre` is in corner coordinates, where pixel i spans [i, i + 1]) of a crop of `sides` (width, height, image
    pixels) about `centre`, turned by `angle`, at size×size."""
    c, s = math.cos(angle), math.sin(angle)
    kx, ky = sides[0] / size, sides[1] / size
    rot = np.array([[c * kx, -s * ky], [s * kx, c * ky]])
    # crop index u (centre u + 0.5) -> image corner coordinates centre + rot (u + 0.5 - size/2) -> index − 0.5
    offset = centre - rot @ np.array([size / 2 - 0.5, size / 2 - 0.5]) - 0.5
    return np.hstack([rot, offset[:, None]])


def warp_crop(image: np.ndarray, to_image: np.ndarray, size: int, border: int = cv2.BORDER_REPLICATE) -> np.ndarray:
    """The size×size crop whose pixels `to_image` maps into the image, bilinear."""
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    return cv2.warpAffine(image, to_image, (size, size), flags=flags, borderMode=border)


def scaled_box(box: np.ndarray, scale: float, width: int, height: int) -> tuple[int, int, int, int]:
    """The box (x1, y1, x2, y2) scaled about its centre by `scale`, or by less where that would not fit the image,
    then shifted to lie inside it; integer pixel bounds (x1, y1, x2, y2), as upstream's AffineCrop cuts them (the
    same operations in the same order, so that the integer bounds agree to the pixel)."""
    bw, bh = float(box[2] - box[0]), float(box[3] - box[1])
    scale = min(scale, (height - 1) / bh, (width - 1) / bw)
    bounds = []
    for start, side, limit in ((float(box[0]), bw, width), (float(box[1]), bh, height)):
        centre, half = start + side / 2, side * scale / 2
        lo, hi = centre - half, centre + half
        if lo < 0:
            lo, hi = 0.0, hi - lo
        if hi > limit:
            lo, hi = lo - (hi - limit), float(limit)
        bounds.append((lo, hi))
    (x1, x2), (y1, y2) = bounds
    return int(x1), int(y1), int(x2), int(y2)


def box_crop(
    image: np.ndarray, box: np.ndarray, eyes: np.ndarray | None, spec: CropConfig
) -> tuple[np.ndarray, np.ndarray]:
    """A `box` crop of the face (box x1, y1, x2, y2; eyes: image-left eye, image-right eye, or None for no turn)
    and its to_image."""
    height, width = image.shape[:2]
    centre, sides = box_frame(box, 1.0 if spec.inside else spec.scale, spec.square)
    if spec.inside:
        if spec.square:
            half = np.array(sides) / 2
            box = np.concatenate([centre - half, centre + half])
        x1, y1, x2, y2 = scaled_box(box, spec.scale, width, height)
        x2, y2 = max(x2, x1 + 1), max(y2, y1 + 1)  # at least a pixel, for boxes under a pixel wide
        pixels = cv2.resize(image[y1:y2, x1:x2], (spec.size, spec.size), interpolation=cv2.INTER_LINEAR)
        return pixels, resize_matrix(x1, y1, x2, y2, spec.size)
    angle = eye_angle(eyes) if spec.level_eyes and eyes is not None else 0.0
    to_image = crop_matrix(centre, sides, angle, spec.size)
    return warp_crop(image, to_image, spec.size), to_image


def cut(
    image: np.ndarray, box: np.ndarray, landmarks: np.ndarray | None, spec: CropConfig
) -> tuple[np.ndarray, np.ndarray]:
    """One crop of one face as `spec` asks (RGB uint8, size×size) and its to_image (2×3). `landmarks` None: the
    image is the face (skip_detection): an aligned crop is the whole image resized, a box crop's box is the whole
    image, not turned."""
    if spec.kind == "box":
        return box_crop(image, box, None if landmarks is None else landmarks[:2], spec)
    if landmarks is None:
        height, width = image.shape[:2]
        return resize_whole(image, spec.size), resize_matrix(0, 0, width, height, spec.size)
    return aligned_crop(image, landmarks, spec.size, spec.padding, np.array(spec.template))
