"""Recall of face detectors on the WIDER FACE validation subset in ../shared/datasets (faces ≥ 32 and ≥ 64 px high),
and the share of their boxes that lie on an annotated face.

The subset stores every photo stretched to 416×416; each is resized back to its original size before detection
so faces keep their shape, and matched to the ground truth in original pixels at IoU ≥ 0.5 (greedy, one detection
per face). Candidates: our YuNet and MTCNN (ONNX, the service's own code paths, side by side in one run) at several
settings — YuNet's other network (yunet_s, read from --weights) too — and, when `dlib` imports, dlib's HOG
frontal-face detector.

    python -m recipes.detector_eval --data ../shared/datasets [--candidates NAME ...] [--json out.json]
    python -m recipes.detector_eval --list                 # the candidates' names
    python -m recipes.detector_eval --masked [--detector yunet]   # masked faces vs false faces
    python -m recipes.detector_eval --landmark-offsets     # YuNet's points onto MTCNN's conventions

`--masked` measures a detector (MTCNN unless told) on the training parts of the mask sets (every second masked
photo) and on face-free pictures (scikit-image's samples and the WIDER quarters that hold no labelled face), with
a second, more lenient look where the default finds nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

Detector = Callable[[np.ndarray], np.ndarray]  # RGB image -> (N, 4) boxes x1, y1, x2, y2
MIN_HEIGHT = 32
LARGE_HEIGHT = 64
MODEL_REPO = Path(__file__).resolve().parents[1]


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
    found = total = false_pos = found_clean = total_clean = found_large = total_large = returned = on_face = 0
    elapsed = 0.0
    for image, big, clean, other in samples:
        start = time.perf_counter()
        boxes = detect(image)
        elapsed += time.perf_counter() - start
        returned += len(boxes)
        used = np.zeros(len(boxes), bool)
        for face, is_clean in zip(big, clean, strict=True):
            large = face[3] - face[1] >= LARGE_HEIGHT
            total += 1
            total_clean += int(is_clean)
            total_large += int(large)
            if len(boxes) == 0:
                continue
            overlaps = np.where(used, 0.0, iou(face, boxes))
            best = int(np.argmax(overlaps))
            if overlaps[best] >= 0.5:
                used[best] = True
                found += 1
                found_clean += int(is_clean)
                found_large += int(large)
        # A detection matching no annotated face at all (small, invalid ones included) counts as false; one "on a
        # face" overlaps an annotated face of any size by IoU ≥ 0.5.
        everything = np.concatenate([big, other])
        best_overlap = np.array([iou(b, everything).max() if len(everything) else 0.0 for b in boxes])
        false_pos += int(np.sum(~used & (best_overlap < 0.3)))
        on_face += int(np.sum(best_overlap >= 0.5))
    return {
        "recall": found / total,
        "faces": total,
        "recall_64": found_large / max(total_large, 1),
        "faces_64": total_large,
        "recall_clean": found_clean / max(total_clean, 1),
        "clean_faces": total_clean,
        "false_positives": false_pos,
        "boxes": returned,
        "on_face": on_face / max(returned, 1),
        "ms_per_image": 1000 * elapsed / len(samples),
        "images": len(samples),
    }


def mtcnn_candidate(min_face_size: float, min_confidence: float) -> Detector:
    from services.detector.model import MtcnnDetector
    from services.runtime.modelrepo import load_model

    model = load_model(MODEL_REPO, "mtcnn")
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


WEIGHTS = Path("../shared/weights/yunet")  # where yunet_s (not shipped) is read from; --weights changes it


def yunet_detector(network: str | None = None, **params: Any) -> Any:
    """The service's YunetDetector on `yunet_<network>_dynamic.onnx` (model-repo's file where it is the one shipped
    or no network is named, else the one in WEIGHTS), its config's parameters overridden by `params`."""
    from services.detector.yunet import YunetDetector
    from services.runtime.backends import BackendOptions, create_backend
    from services.runtime.modelrepo import load_model

    model = load_model(MODEL_REPO, "yunet")
    model.config.params.update(params)
    filename = f"yunet_{network}_dynamic.onnx"
    if network is not None and model.config.files["model"] != filename:
        backend = create_backend(BackendOptions(), WEIGHTS / filename, "yunet-model")
        model = dataclasses.replace(model, backends={"model": backend})
    return YunetDetector(model)


def yunet_candidate(network: str | None = None, **params: Any) -> Detector:
    detector = yunet_detector(network, **params)
    return lambda image: np.array([d.box for d in detector.detect(image)]).reshape(-1, 4)


def _yunet_candidates() -> dict[str, Callable[[], Detector]]:
    """The settings compared before choosing the defaults (model-repo/yunet/card.md); each name says what differs
    from a plain decoder: the whole photo (max side 1600), no minimum face size, NMS IoU 0.3."""
    plain: dict[str, float] = {"max_side": 1600, "min_face_size": 0, "nms_iou": 0.3}
    out: dict[str, Callable[[], Detector]] = {}

    def add(name: str, network: str, **params: float) -> None:
        out[name] = lambda: yunet_candidate(network, **{**plain, **params})

    for network in ("n", "s"):
        for score in (0.5, 0.6, 0.7, 0.8, 0.9):
            add(f"yunet_{network} (score {score})", network, min_confidence=score)
        for iou_ in (0.4, 0.5):
            add(f"yunet_{network} (score 0.7, nms {iou_})", network, min_confidence=0.7, nms_iou=iou_)
    for below in (32, 64):
        add(f"yunet_n (score 0.7, 2x pass for faces < {below} px)", "n", upscale=2.0, upscale_max_face=below)
    for side in (640, 800, 1024):
        add(f"yunet_n (score 0.7, max side {side})", "n", min_confidence=0.7, max_side=side)
    for size in (16, 20, 24):
        add(f"yunet_n (score 0.7, min face {size})", "n", min_confidence=0.7, min_face_size=size)
    for network in ("n", "s"):
        for score in (0.6, 0.65, 0.7, 0.72, 0.75):
            add(f"yunet_{network} (score {score}, max side 800, min face 20)", network,
                min_confidence=score, max_side=800, min_face_size=20)  # fmt: skip
    return out


CANDIDATES: dict[str, Callable[[], Detector]] = {
    "yunet (model-repo/yunet as configured)": yunet_candidate,
    **_yunet_candidates(),
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
YUNET_SECOND_LOOKS = [0.6, 0.5, 0.4]  # YuNet has no stages: a lower score threshold only


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

    from recipes.splits import mask_is_augmented_copy, mask_is_test

    folder = data_dir / "mask" / source / "with_mask"
    names = sorted(p.name for p in folder.iterdir())
    kept = [n for n in names if not mask_is_test(source, n) and not mask_is_augmented_copy(n)][::2]
    return [np.asarray(ImageOps.exif_transpose(Image.open(folder / n)).convert("RGB")) for n in kept]


def masked_table(data_dir: Path, detector_name: str = "mtcnn") -> dict[str, dict[str, float]]:
    """Share of photos with a face found, per set, by default and with each second look where none was found."""
    from services.detector.detectors import create_detector
    from services.runtime.modelrepo import load_model

    detector = create_detector(load_model(MODEL_REPO, detector_name))
    default = detector.params
    sets = {source: masked_photos(data_dir, source) for source in ("chandrikadeb7", "prajnasb")}
    sets["face-free"] = face_free_pictures(load_wider(data_dir))
    print(", ".join(f"{name}: {len(images)}" for name, images in sets.items()))
    found = {name: np.array([bool(detector.detect(image)) for image in images]) for name, images in sets.items()}
    table = {"default": {name: float(hit.mean()) for name, hit in found.items()}}
    looks = SECOND_LOOKS if detector_name == "mtcnn" else [(None, c) for c in YUNET_SECOND_LOOKS]
    for thresholds, confidence in looks:
        if thresholds is not None:
            detector.params = dataclasses.replace(default, thresholds=thresholds)
        row = {}
        for name, images in sets.items():
            pairs = zip(images, found[name], strict=True)
            row[name] = float(np.mean([hit or bool(detector.detect(image, confidence)) for image, hit in pairs]))
        stages = f"stages {thresholds or 'default'}, " if detector_name == "mtcnn" else ""
        table[f"{stages}confidence {confidence}"] = row
        detector.params = default
    return table


def landmark_offsets(data_dir: Path, count: int = 1500) -> np.ndarray:
    """MTCNN's five points minus YuNet's (without its configured offsets) in each face's frame, in eye distances
    (services.detector.yunet.shift_landmarks), averaged over CelebA's first `count` faces where each finds one face:
    images of the attribute model's training part (splits.CELEBA_TRAIN_LAST_ID), never of an evaluation."""
    from recipes.splits import CELEBA_TRAIN_LAST_ID
    from services.detector.model import MtcnnDetector
    from services.runtime.modelrepo import load_model

    assert count <= CELEBA_TRAIN_LAST_ID
    mtcnn = MtcnnDetector(load_model(MODEL_REPO, "mtcnn"))
    yunet = yunet_detector(landmark_offsets=[])
    diffs = []
    for path in sorted((data_dir / "celeba" / "images").glob("*.jpg"))[:count]:
        image = np.asarray(Image.open(path).convert("RGB"))
        theirs, ours = mtcnn.detect(image), yunet.detect(image)
        if len(theirs) != 1 or len(ours) != 1:
            continue
        points = ours[0].landmarks.astype(np.float64)
        origin, eyes = points[:2].mean(0), points[1] - points[0]
        frame = np.stack([eyes, [-eyes[1], eyes[0]]]) / float(eyes @ eyes)  # rows: x, y in eye distances
        diffs.append((theirs[0].landmarks - origin) @ frame.T - (points - origin) @ frame.T)
    print(f"{len(diffs)} CelebA faces found by both")
    return np.mean(diffs, axis=0)


def main() -> None:
    global WEIGHTS
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--weights", type=Path, default=WEIGHTS, help="the YuNet files not shipped in model-repo")
    parser.add_argument("--candidates", nargs="*", default=list(CANDIDATES))
    parser.add_argument("--list", action="store_true", help="print the candidates' names and stop")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--masked", action="store_true", help="masked faces and face-free pictures instead")
    parser.add_argument("--detector", default="mtcnn", help="the model-repo detector --masked measures")
    parser.add_argument("--landmark-offsets", action="store_true", help="YuNet's landmark_offsets, measured anew")
    args = parser.parse_args()
    WEIGHTS = args.weights
    if args.landmark_offsets:
        offsets = landmark_offsets(args.data)
        print("landmark_offsets = [" + ", ".join(f"[{x:.4f}, {y:.4f}]" for x, y in offsets) + "]")
        return
    if args.list:
        print("\n".join(CANDIDATES))
        return
    if args.masked:
        table = masked_table(args.data, args.detector)
        for name, row in table.items():
            print(f"{name:46} " + "  ".join(f"{k} {v:.3f}" for k, v in row.items()))
        if args.json:
            args.json.write_text(json.dumps(table, indent=2))
        return
    samples = load_wider(args.data)
    results = {}
    header = f"{'candidate':48} {'≥32 px':>7} {'≥64 px':>7} {'clean':>7} {'boxes':>6} {'on face':>8} {'false+':>7}"
    print(f"{header} {'ms/img':>8}")
    for name in args.candidates:
        try:
            detect = CANDIDATES[name]()
        except ImportError as exc:
            print(f"{name:48} skipped ({exc})")
            continue
        r = evaluate(detect, samples)
        results[name] = r
        print(
            f"{name:48} {r['recall']:7.3f} {r['recall_64']:7.3f} {r['recall_clean']:7.3f} {r['boxes']:6d} "
            f"{r['on_face']:8.3f} {r['false_positives']:7d} {r['ms_per_image']:8.1f}",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
