"""dlib's own alignment inside our crop: its 5-point shape predictor, in numpy, and its face chip from those points.

The embedder's network was trained on dlib's chips (`get_face_chip(image, shape, 150, 0.25)` of the points of
`shape_predictor_5_face_landmarks.dat`). The detector's five landmarks put a face close to that chip but not on it
(YuNet's eye line, for one, strays from dlib's by 3.5° per face, standard deviation, on the dev photos);
`ChipRefiner` finds dlib's points in the crop the detector cut, starting from where dlib's face box lies in such a
crop, and warps the crop onto dlib's chip. `ShapePredictor` replays dlib's regression-tree cascade (Kazemi &
Sullivan 2014) as dlib's `shape_predictor::operator()` does, from the arrays model-repo/recipes/dlib_shape_export.py
writes.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from services.runtime.geometry import similarity_transform
from services.runtime.modelrepo import RefineConfig

# Where get_face_chip_details puts the 5-point model's points (outer and inner corner of the eye on the image's right,
# then of the one on its left, then the bottom of the nose), as fractions of a chip without padding (dlib 19.x).
DLIB_5_CHIP = np.array(
    [
        [0.8595674595992, 0.2134981538014],
        [0.6460604764104, 0.2289674387677],
        [0.1205750620789, 0.2137274526848],
        [0.3340850613712, 0.2290642403242],
        [0.4901123135679, 0.6277975316475],
    ]
)


def intensity(images: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB → (N, H, W) uint8 grey as dlib's predictor reads a pixel: (r + g + b) / 3, floored."""
    return (images.astype(np.uint16).sum(axis=-1) // 3).astype(np.uint8)


class ShapePredictor:
    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        levels, trees, splits, _ = arrays["split_features"].shape
        self.initial = arrays["initial_shape"].astype(np.float32).reshape(-1)  # (2P,) in the face box's unit square
        self.points = len(self.initial) // 2
        # Each level's splits, trees one after another (a tree's nodes in dlib's order: node i's children 2i+1, 2i+2):
        # the two feature pixels each compares and its threshold; its leaves' shape updates likewise.
        features = arrays["split_features"].astype(np.intp).reshape(levels, trees * splits, 2)
        self.first, self.second = features[..., 0], features[..., 1]
        self.thresholds = arrays["split_thresholds"].reshape(levels, trees * splits)
        self.leaves = arrays["leaf_values"].reshape(levels, trees * (splits + 1), 2 * self.points)
        self.anchors = arrays["anchors"].astype(np.intp)  # (L, F): the landmark each feature pixel hangs on
        self.deltas = arrays["deltas"]  # (L, F, 2): its offset from it, in the initial shape's frame
        self.trees, self.splits = trees, splits
        self.depth = int(np.log2(splits + 1))
        # The least-squares rotation and scale from the initial shape to a shape (a, b: [[a, -b], [b, a]]) is linear
        # in the centred shape: these two columns give a and b.
        ref = self.initial.reshape(-1, 2) - self.initial.reshape(-1, 2).mean(axis=0)
        self._ab = np.stack([ref.reshape(-1), np.stack([-ref[:, 1], ref[:, 0]], axis=1).reshape(-1)], axis=1)
        self._ab /= (ref**2).sum()

    def _tform(self, shape: np.ndarray) -> np.ndarray:
        """(N, P, 2) shapes → (N, 2, 2) float32: the rotation and scale of dlib's find_tform_between_shapes."""
        a, b = ((shape - shape.mean(axis=1, keepdims=True)).reshape(len(shape), -1) @ self._ab).T
        return np.stack([a, -b, b, a], axis=1).reshape(-1, 2, 2).astype(np.float32)

    @classmethod
    def load(cls, path: Path) -> ShapePredictor:
        with np.load(path) as arrays:
            return cls({k: arrays[k] for k in arrays.files})

    def __call__(self, grey: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """The points (N, P, 2) in pixels of each grey image (N, H, W) uint8, starting from its box (N, 4: left, top,
        right, bottom, dlib's inclusive corners). dlib rounds its output to whole pixels; these are not rounded."""
        n, height, width = grey.shape
        left, top = boxes[:, 0:1], boxes[:, 1:2]
        sx, sy = boxes[:, 2:3] - left, boxes[:, 3:4] - top
        image_start = (np.arange(n) * height * width)[:, None]
        pixel_start = (np.arange(n) * self.deltas.shape[1])[:, None]
        tree_nodes = (np.arange(self.trees) * self.splits)[None]
        tree_leaves = (np.arange(self.trees) * (self.splits + 1))[None] - self.splits
        flat = grey.reshape(-1)
        # Rows: the current shape, then every tree's update; summed over the rows, one after another in float32 as
        # dlib adds them, which gives dlib's points exactly.
        updates = np.empty((self.trees + 1, n, 2 * self.points), dtype=np.float32)
        updates[0] = self.initial
        for level in range(len(self.first)):
            shape = updates[0].reshape(n, -1, 2)
            # The feature pixels follow the current shape: the initial shape's frame mapped onto it (rotation, scale).
            tform = self._tform(shape)
            unit = self.deltas[level] @ tform.transpose(0, 2, 1) + np.take(shape, self.anchors[level], axis=1)
            x = np.floor(left + unit[..., 0] * sx + 0.5)
            y = np.floor(top + unit[..., 1] * sy + 0.5)
            inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
            index = image_start + (np.clip(y, 0, height - 1) * width + np.clip(x, 0, width - 1)).astype(np.intp)
            pixels = np.where(inside, np.take(flat, index), 0).astype(np.float32).reshape(-1)
            # Each tree walked down from its root: left when the two pixels' difference is above the threshold.
            node = np.zeros((n, self.trees), dtype=np.intp)
            for _ in range(self.depth):
                split = tree_nodes + node
                diff = pixels[pixel_start + self.first[level][split]] - pixels[pixel_start + self.second[level][split]]
                node = 2 * node + 1 + (diff <= self.thresholds[level][split])
            np.take(self.leaves[level], (tree_leaves + node).T, axis=0, out=updates[1:])
            updates[0] = updates.sum(axis=0)
        shape = updates[0].astype(np.float64).reshape(n, -1, 2)
        return np.stack([left + shape[..., 0] * sx, top + shape[..., 1] * sy], axis=-1)


def chip_matrix(points: np.ndarray, size: int, padding: float) -> np.ndarray:
    """The 2×3 map from image to chip pixels for dlib's 5 points, as get_face_chip_details and get_mapping_to_chip
    build it: the least-squares similarity from the chip template to the points gives a rotation, a scale s and a
    centre; dlib's rectangle of side size·s around that centre (its corners size·s − 1 apart, dlib's inclusive
    convention) is mapped onto the chip's corner pixels 0 and size − 1."""
    template = (padding + DLIB_5_CHIP) / (2 * padding + 1) * size
    chip_to_image = similarity_transform(template, points)
    scale = np.sqrt(abs(np.linalg.det(chip_to_image[:, :2])))
    centre = chip_to_image[:, :2] @ [size / 2, size / 2] + chip_to_image[:, 2]
    linear = (size - 1) / (size * scale - 1) * chip_to_image[:, :2].T / scale
    return np.c_[linear, (size - 1) / 2 - linear @ centre]


class ChipRefiner:
    """Crops cut on the detector's landmarks → dlib's chips: the shape predictor started from the box where dlib's
    detector puts the face in such a crop, then the crop warped onto dlib's chip of those points. A crop whose
    correction would be large (its corners moving by more than `max_change` of its side: a head turned beyond what
    dlib's frontal detector finds, or no face where the box expects one, e.g. a whole photo sent with
    skip_detection) is passed on as it came (resized to the chip if it is not the chip's size)."""

    def __init__(self, predictor: ShapePredictor, config: RefineConfig) -> None:
        self.predictor, self.config = predictor, config

    @classmethod
    def from_config(cls, directory: Path, config: RefineConfig) -> ChipRefiner:
        return cls(ShapePredictor.load(directory / config.predictor), config)

    def points(self, crops: np.ndarray) -> np.ndarray:
        """dlib's five points (N, 5, 2) in each crop's pixels."""
        side = crops.shape[1]
        cx, cy, width = (np.array(self.config.box) * side).tolist()
        box = np.array([[cx - width / 2, cy - width / 2, cx + width / 2, cy + width / 2]])
        return self.predictor(intensity(crops), np.repeat(box, len(crops), axis=0))

    def changes(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each crop's map onto dlib's chip (N, 2, 3), and how far it moves the chip's corners (N,), as a fraction of
        the crop side, against a plain resize of the crop."""
        c, side = self.config, crops.shape[1]
        matrices = np.stack([chip_matrix(p, c.chip_size, c.chip_padding) for p in self.points(crops)])
        corners = np.array([[0, 0], [c.chip_size - 1, 0], [0, c.chip_size - 1], [c.chip_size - 1, c.chip_size - 1]])
        unchanged = corners * (side - 1) / (c.chip_size - 1)
        moved = [np.c_[corners, np.ones(4)] @ cv2.invertAffineTransform(m).T for m in matrices]  # chip corners' sources
        return matrices, np.array([np.abs(m - unchanged).max() / side for m in moved])

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        """(N, S, S, 3) uint8 RGB crops → (N, chip, chip, 3) uint8 chips."""
        c = self.config
        out = np.empty((len(crops), c.chip_size, c.chip_size, 3), dtype=np.uint8)
        for i, (crop, matrix, change) in enumerate(zip(crops, *self.changes(crops), strict=True)):
            if change <= c.max_change:
                out[i] = cv2.warpAffine(
                    crop, matrix, (c.chip_size, c.chip_size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
                )
            else:
                out[i] = crop if crop.shape[0] == c.chip_size else cv2.resize(crop, (c.chip_size, c.chip_size))
        return out
