"""Recall of face detectors on the WIDER FACE validation subset in ../shared/datasets (faces ≥ 32 px high).

The subset stores every photo stretched to 416×416; each is resized back to its original size before detection
so faces keep their shape, and matched to the ground truth in original pixels at IoU ≥ 0.5 (greedy, one detection
per face). Candidates: our MTCNN (ONNX, the service's own code path) and, when `dlib` imports, dlib's HOG
frontal-face detector.

    python model-repo/recipes/detector_eval.py --data ../shared/datasets [--candidates mtcnn dlib-hog]
    python model-repo/recipes/detector_eval.py --masked     # masked faces vs false faces (model-repo/mtcnn/card.md)

`--masked` measures MTCNN on the training parts of the mask sets (every second masked photo) and on face-free
pictures (scikit-image's samples and the WIDER quarters that hold no labelled face), with a second, more lenient
look where the default finds nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

Detector = Callable[[np.ndarray], np.ndarray]  # RGB image -> (N, 4) boxes x1, y1, x2, y2
MIN_HEIGHT = 32


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / (area + areas - inter)


Sample = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def load_wider(data_dir: Path) -> list[Sample]:
    """(image at original size, boxes of faces ≥ 32 px, whether each of those is clean — no blur, occlusion or
    atypical pose —, boxes of all other faces) per photo."""
    root = data_dir / "wider_face_val_subset"
    gt = json.loads((root / "gt.json").read_text())
    samples = []
    for name, entry in sorted(gt.items()):
        img = Image.open(root / "images" / name).convert("RGB")
        img = img.resize((entry["orig_width"], entry["orig_height"]), Image.BICUBIC)
        big, clean, other = [], [], []
        for face in entry["faces"]:
            x, y, w, h = face["xywh"]
            if h >= MIN_HEIGHT and not face["invalid"]:
                big.append([x, y, x + w, y + h])
                clean.append(not (face["blur"] or face["occlusion"] or face["pose"]))
            else:
                other.append([x, y, x + w, y + h])
        samples.append(
            (
                np.asarray(img),
                np.array(big, float).reshape(-1, 4),
                np.array(clean, bool),
                np.array(other, float).reshape(-1, 4),
            )
        )
    return samples


def evaluate(detect: Detector, samples: list[Sample]) -> dict[str, float]:
    found = total = false_pos = found_clean = total_clean = 0
    elapsed = 0.0
    for image, big, clean, other in samples:
        start = time.perf_counter()
        boxes = detect(image)
        elapsed += time.perf_counter() - start
        used = np.zeros(len(boxes), bool)
        for face, is_clean in zip(big, clean, strict=True):
            total += 1
            total_clean += int(is_clean)
            if len(boxes) == 0:
                continue
            overlaps = np.where(used, 0.0, iou(face, boxes))
            best = int(np.argmax(overlaps))
            if overlaps[best] >= 0.5:
                used[best] = True
                found += 1
                found_clean += int(is_clean)
        # A detection matching no annotated face at all (small, invalid ones included) counts as false.
        everything = np.concatenate([big, other])
        for k in np.flatnonzero(~used):
            if len(everything) == 0 or iou(boxes[k], everything).max() < 0.3:
                false_pos += 1
    return {
        "recall": found / total,
        "faces": total,
        "recall_clean": found_clean / max(total_clean, 1),
        "clean_faces": total_clean,
        "false_positives": false_pos,
        "ms_per_image": 1000 * elapsed / len(samples),
        "images": len(samples),
    }


def mtcnn_candidate(min_face_size: float, min_confidence: float) -> Detector:
    from services.detector.model import MtcnnDetector
    from services.runtime.modelrepo import load_model

    model = load_model(Path(__file__).resolve().parents[1], "mtcnn")
    model.config.params["min_face_size"] = min_face_size
    detector = MtcnnDetector(model)
    return lambda image: np.array([d.box for d in detector.detect(image, min_confidence)]).reshape(-1, 4)


def dlib_hog_candidate(upsample: int) -> Detector:
    import dlib

    detector = dlib.get_frontal_face_detector()

    def detect(image: np.ndarray) -> np.ndarray:
        rects = detector(image, upsample)
        return np.array([[r.left(), r.top(), r.right(), r.bottom()] for r in rects], float).reshape(-1, 4)

    return detect


CANDIDATES: dict[str, Callable[[], Detector]] = {
    "mtcnn (min face 20, conf 0.9)": lambda: mtcnn_candidate(20, 0.9),
    "mtcnn (min face 12, conf 0.9)": lambda: mtcnn_candidate(12, 0.9),
    "mtcnn (min face 20, conf 0.7)": lambda: mtcnn_candidate(20, 0.7),
    "mtcnn (min face 40, conf 0.9)": lambda: mtcnn_candidate(40, 0.9),
    "dlib-hog (upsample 1)": lambda: dlib_hog_candidate(1),
    "dlib-hog (upsample 0)": lambda: dlib_hog_candidate(0),
}


FACE_FREE_SAMPLES = ["coffee", "chelsea", "rocket", "horse", "hubble_deep_field", "moon", "brick", "grass", "gravel",
                     "text", "page", "coins", "clock", "checkerboard", "colorwheel", "immunohistochemistry", "retina",
                     "logo", "cell", "binary_blobs"]  # fmt: skip
# (stage thresholds, confidence) of the second look; None: the detector's own
SECOND_LOOKS = [(None, 0.7), ((0.5, 0.6, 0.6), 0.7), ((0.4, 0.5, 0.5), 0.7), ((0.4, 0.5, 0.5), 0.5)]


def face_free_pictures(samples: list[Sample]) -> list[np.ndarray]:
    """scikit-image's sample pictures without a face, and each WIDER photo's quarters that hold no labelled face."""
    import skimage.data

    pictures = []
    for name in FACE_FREE_SAMPLES:
        image = np.asarray(getattr(skimage.data, name)())
        if image.dtype != np.uint8:
            image = (image.astype(float) / image.max() * 255).astype(np.uint8)
        pictures.append(np.stack([image] * 3, -1) if image.ndim == 2 else image[..., :3])
    for image, big, _, other in samples:
        boxes, (h, w) = np.concatenate([big, other]), image.shape[:2]
        for y0, y1 in [(0, h // 2), (h // 2, h)]:
            for x0, x1 in [(0, w // 2), (w // 2, w)]:
                inside = (np.minimum(boxes[:, 2], x1) > np.maximum(boxes[:, 0], x0)) & (
                    np.minimum(boxes[:, 3], y1) > np.maximum(boxes[:, 1], y0)
                )
                if not inside.any() and min(y1 - y0, x1 - x0) >= 100:
                    pictures.append(image[y0:y1, x0:x1])
    return pictures


def masked_photos(data_dir: Path, source: str) -> list[np.ndarray]:
    """Every second masked photo of a mask set's training part (the mask recipe's test split left out)."""
    from PIL import ImageOps
    from splits import mask_is_augmented_copy, mask_is_test

    folder = data_dir / "mask" / source / "with_mask"
    names = sorted(p.name for p in folder.iterdir())
    kept = [n for n in names if not mask_is_test(source, n) and not mask_is_augmented_copy(n)][::2]
    return [np.asarray(ImageOps.exif_transpose(Image.open(folder / n)).convert("RGB")) for n in kept]


def masked_table(data_dir: Path) -> dict[str, dict[str, float]]:
    """Share of photos with a face found, per set, by default and with each second look where none was found."""
    from services.detector.model import MtcnnDetector
    from services.runtime.modelrepo import load_model

    detector = MtcnnDetector(load_model(Path(__file__).resolve().parents[1], "mtcnn"))
    default = detector.params
    sets = {source: masked_photos(data_dir, source) for source in ("chandrikadeb7", "prajnasb")}
    sets["face-free"] = face_free_pictures(load_wider(data_dir))
    print(", ".join(f"{name}: {len(images)}" for name, images in sets.items()))
    found = {name: np.array([bool(detector.detect(image)) for image in images]) for name, images in sets.items()}
    table = {"default": {name: float(hit.mean()) for name, hit in found.items()}}
    for thresholds, confidence in SECOND_LOOKS:
        detector.params = dataclasses.replace(default, thresholds=thresholds or default.thresholds)
        row = {}
        for name, images in sets.items():
            pairs = zip(images, found[name], strict=True)
            row[name] = float(np.mean([hit or bool(detector.detect(image, confidence)) for image, hit in pairs]))
        table[f"stages {thresholds or 'default'}, confidence {confidence}"] = row
        detector.params = default
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--candidates", nargs="*", default=list(CANDIDATES))
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--masked", action="store_true", help="masked faces and face-free pictures instead")
    args = parser.parse_args()
    if args.masked:
        table = masked_table(args.data)
        for name, row in table.items():
            print(f"{name:46} " + "  ".join(f"{k} {v:.3f}" for k, v in row.items()))
        if args.json:
            args.json.write_text(json.dumps(table, indent=2))
        return
    samples = load_wider(args.data)
    results = {}
    print(f"{'candidate':34} {'recall':>7} {'faces':>6} {'clean':>7} {'false+':>7} {'ms/img':>8}")
    for name in args.candidates:
        try:
            detect = CANDIDATES[name]()
        except ImportError as exc:
            print(f"{name:34} skipped ({exc})")
            continue
        r = evaluate(detect, samples)
        results[name] = r
        print(
            f"{name:34} {r['recall']:7.3f} {r['faces']:6d} {r['recall_clean']:7.3f} {r['false_positives']:7d} "
            f"{r['ms_per_image']:8.1f}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
