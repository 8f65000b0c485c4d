"""Train our own mask / no-mask classifier on faces cut by our own detector and aligner.

    python model-repo/recipes/train_mask.py --data ../shared/datasets   # prepare crops, train, evaluate, export

Runs in the training environment (`make tools`: torch CPU + this project). The crops come from the service path
itself: MTCNN (confidence ≥ 0.5, largest face) → `align_face` to the attributes service's crop (224 px, padding
0.25) → `narrow_padding` to this model's padding → resize to the input size, as `AttributesModel` and `Classifier`
do. Where MTCNN finds no face (a third of the real masked faces), the service falls back to the whole image
(`resize_whole`, skip_detection) and the same narrowing; those images are trained on in that view, and detected
faces are also shown in the whole-image view now and then, so the net knows both.

Data: `<data>/mask/{prajnasb,chandrikadeb7}/{with_mask,without_mask}/`. Split: `splits.mask_is_test` (≈20% test,
by an md5 of the source face / augmentation family; the `augmented_image_*` files are left out altogether, as
their source is unknown); test images are never trained on and only read once, after
the last epoch, for the figures in metrics.json (with mask_mobilenetv2 on the same images and path to compare).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from small_cnn import SmallCnn, TrainingRun, export_onnx
from splits import mask_is_augmented_copy, mask_is_test

from services.detector.align import align_face, resize_whole
from services.detector.model import MtcnnDetector
from services.runtime.classifier import Classifier
from services.runtime.modelrepo import CropConfig, load_model
from services.runtime.preprocess import narrow_padding

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("prajnasb", "chandrikadeb7")
FOLDERS = ("with_mask", "without_mask")  # label index = position: labels = ["mask", "no_mask"]
# The attributes service cuts this crop and hands the mask model the middle of it.
SERVICE_CROP = CropConfig(name="face_224_p025", size=224, padding=0.25)
PADDING = 0.1  # this model's [crop] padding: a little margin around the standard template (chin, mask edges)
INPUT_SIZE = 64
PRETRAINED, PRETRAINED_PADDING = "mask_mobilenetv2", 0.0
WHOLE_VIEW_RATE = 0.25  # share of detected training faces shown in the fallback (whole-image) view instead
BATCH = 64
SEED = 1234


def to_input(crops224: np.ndarray) -> np.ndarray:
    """The service's 224 px / padding 0.25 crops → this model's input (narrow_padding, then to_tensor's resize)."""
    narrowed = narrow_padding(crops224, SERVICE_CROP.padding, PADDING)
    return np.stack([cv2.resize(c, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA) for c in narrowed])


def prepare(data_dir: Path, cache: Path) -> dict[str, np.ndarray]:
    """Run detector + aligner once over both sets; cache the network inputs of both views and the pretrained
    model's answers on the test images."""
    if cache.exists():
        return dict(np.load(cache))
    detector = MtcnnDetector(load_model(REPO / "model-repo", "mtcnn"))
    pretrained = Classifier(load_model(REPO / "model-repo", PRETRAINED))
    rows: dict[str, list] = {k: [] for k in ("face", "whole", "y", "detected", "source", "test", "pretrained", "name")}
    started, skipped = time.time(), 0
    for s, source in enumerate(SOURCES):
        for label, folder in enumerate(FOLDERS):
            for path in sorted((data_dir / "mask" / source / folder).iterdir()):
                if mask_is_augmented_copy(path.name):  # neither train nor test (see splits.py)
                    skipped += 1
                    continue
                image = np.asarray(Image.open(path).convert("RGB"))
                faces = detector.detect(image, min_confidence=0.5)
                whole = resize_whole(image, SERVICE_CROP.size)
                if faces:
                    face = max(faces, key=lambda f: f.area)
                    crop = align_face(image, face.landmarks, SERVICE_CROP.size, SERVICE_CROP.padding)
                else:
                    crop = whole  # the service's fallback: the whole image, as skip_detection
                test = mask_is_test(source, path.name)
                probs = np.full(2, np.nan, dtype=np.float32)
                if test:  # what the attributes service does today with the pretrained model
                    probs = pretrained.probabilities(
                        narrow_padding(crop[None], SERVICE_CROP.padding, PRETRAINED_PADDING)
                    )[0]
                rows["face"].append(to_input(crop[None])[0])
                rows["whole"].append(to_input(whole[None])[0])
                rows["y"].append(label)
                rows["detected"].append(bool(faces))
                rows["source"].append(s)
                rows["test"].append(test)
                rows["pretrained"].append(probs)
                rows["name"].append(f"{source}/{folder}/{path.name}")
            print(f"prepared {source}/{folder}: {len(rows['y'])} images ({time.time() - started:.0f}s)", flush=True)
    data = {k: np.stack(v) if k in ("face", "whole", "pretrained") else np.array(v) for k, v in rows.items()}
    data["skipped_augmented_copies"] = np.array(skipped)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **data)
    return data


def augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Per image: horizontal flip, rotation ±12°, scale 0.9–1.1, shift ±8%; brightness/contrast and a little colour
    jitter; occasionally grey (NHWC, 0..255)."""
    n = batch.shape[0]
    x = batch.permute(0, 3, 1, 2)

    def uniform(lo: float, hi: float, *shape: int) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, *shape, generator=generator)

    angle = uniform(-12, 12) * math.pi / 180
    scale = uniform(0.9, 1.1)
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [
            torch.stack([cos * flip, -sin, uniform(-0.16, 0.16)], 1),
            torch.stack([sin * flip, cos, uniform(-0.16, 0.16)], 1),
        ],
        1,
    )
    grid = nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    x = nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    grey = (torch.rand(n, 1, 1, 1, generator=generator) < 0.1).float()
    x = grey * x.mean(dim=1, keepdim=True) + (1 - grey) * x
    gain = uniform(0.7, 1.3, 1, 1, 1) * uniform(0.92, 1.08, 3, 1, 1)
    bias = uniform(-30, 30, 1, 1, 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * uniform(0.75, 1.25, 1, 1, 1) + mean
    return (x * gain + bias).clamp(0, 255).permute(0, 2, 3, 1)


def predict(model: SmallCnn, x: np.ndarray) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return torch.cat([model(torch.from_numpy(x[i : i + 256]).float()) for i in range(0, len(x), 256)]).numpy()


def train(data: dict[str, np.ndarray], epochs: int, checkpoint: Path) -> SmallCnn:
    is_train = ~data["test"]
    face = torch.from_numpy(data["face"][is_train]).float()
    whole = torch.from_numpy(data["whole"][is_train]).float()
    detected = torch.from_numpy(data["detected"][is_train])
    y = torch.from_numpy(data["y"][is_train]).long()
    run = TrainingRun(SmallCnn(2, "softmax"), epochs * ((len(y) + BATCH - 1) // BATCH), SEED)
    model, generator = run.model, run.generator
    start_epoch = run.resume(checkpoint)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05)
    for epoch in range(start_epoch, epochs):
        model.train()
        order = torch.randperm(len(y), generator=generator)
        started, total, correct = time.time(), 0.0, 0
        for i in range(0, len(order), BATCH):
            idx = order[i : i + BATCH]
            use_whole = ~detected[idx] | (torch.rand(len(idx), generator=generator) < WHOLE_VIEW_RATE)
            x = torch.where(use_whole[:, None, None, None], whole[idx], face[idx])
            logits = model.logits(augment(x, generator))
            loss = loss_fn(logits, y[idx])
            run.step(loss)
            total += loss.item() * len(idx)
            correct += int((logits.argmax(1) == y[idx]).sum())
        print(f"epoch {epoch + 1}/{epochs} loss {total / len(y):.4f} train acc (augmented) {correct / len(y):.4f} "
              f"({time.time() - started:.0f}s)", flush=True)  # fmt: skip
        run.save(checkpoint, epoch)
    return model


def scores(predicted: np.ndarray, y: np.ndarray, detected: np.ndarray) -> dict:
    correct = predicted == y
    return {
        "accuracy": round(float(correct.mean()), 4),
        "with_mask": round(float(correct[y == 0].mean()), 4),
        "without_mask": round(float(correct[y == 1].mean()), 4),
        "on_detected": round(float(correct[detected].mean()), 4) if detected.any() else None,
        "on_fallback": round(float(correct[~detected].mean()), 4) if (~detected).any() else None,
    }


def evaluate(data: dict[str, np.ndarray], ours: np.ndarray) -> dict:
    """Test split only, through the service path (aligned crop, or the whole image where MTCNN found nothing)."""
    metrics: dict = {}
    for s, source in enumerate(SOURCES):
        in_source = data["source"] == s
        train_rows, test_rows = in_source & ~data["test"], in_source & data["test"]
        y, detected = data["y"][test_rows], data["detected"][test_rows]
        metrics[source] = {
            "train_images": int(train_rows.sum()),
            "test_images": int(test_rows.sum()),
            "test_with_mask": int((y == 0).sum()),
            "test_without_mask": int((y == 1).sum()),
            "test_fallback_whole_image": int((~detected).sum()),
            "detected_rate_all": round(float(data["detected"][in_source].mean()), 4),
            "ours": scores(ours[test_rows].argmax(1), y, detected),
            PRETRAINED: scores(data["pretrained"][test_rows].argmax(1), y, detected),
        }
    return metrics


def speed(model_repo: Path, name: str, batches: tuple[int, ...] = (1, 16), seconds: float = 3.0) -> dict[str, float]:
    """ms/face through `Classifier` (ORT CPU, one intra-op thread) on random 224 px / padding 0.25 crops, the
    narrowing and resize to the input included."""
    loaded = load_model(model_repo, name)
    classifier, padding = Classifier(loaded), loaded.config.crop.padding
    out = {}
    for batch in batches:
        crops = np.random.default_rng(0).integers(0, 256, (batch, 224, 224, 3), dtype=np.uint8)
        for _ in range(3):
            classifier.probabilities(narrow_padding(crops, SERVICE_CROP.padding, padding))
        times: list[float] = []
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline or len(times) < 5:
            start = time.perf_counter()
            classifier.probabilities(narrow_padding(crops, SERVICE_CROP.padding, padding))
            times.append(time.perf_counter() - start)
        out[f"batch_{batch}_ms_per_face"] = round(float(np.median(times)) * 1000 / batch, 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--work", type=Path, default=REPO / ".cache" / "train-mask")
    parser.add_argument("--epochs", type=int, default=9)
    parser.add_argument("--out", type=Path, default=REPO / "model-repo" / "mask_faceplane")
    parser.add_argument("--prepare-only", action="store_true", help="cut and cache the crops, then stop")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    data = prepare(args.data, args.work / "crops.npz")
    print(f"{len(data['y'])} images, {int(data['test'].sum())} test; MTCNN found {int(data['detected'].sum())}",
          flush=True)  # fmt: skip
    if args.prepare_only:
        return
    started = time.time()
    model = train(data, args.epochs, args.work / "checkpoint.pt")
    train_seconds = time.time() - started
    path = export_onnx(model, INPUT_SIZE, args.out)
    # The exported graph through the service's Classifier on the cached test inputs (already at input size).
    classifier = Classifier(load_model(args.out.parent, args.out.name))
    test_inputs = data["face"][data["test"]]
    ours = np.full((len(data["y"]), 2), np.nan, dtype=np.float32)
    ours[data["test"]] = np.concatenate(
        [classifier.probabilities(test_inputs[i : i + 64]) for i in range(0, len(test_inputs), 64)]
    )
    torch_probs = predict(model, test_inputs)
    metrics = evaluate(data, ours)
    metrics["onnx_vs_torch_max_abs_diff"] = float(np.abs(ours[data["test"]] - torch_probs).max())
    metrics["skipped_augmented_copies"] = int(data["skipped_augmented_copies"])
    metrics["epochs"] = args.epochs
    metrics["train_seconds_this_run"] = round(train_seconds)
    metrics["speed"] = speed(args.out.parent, args.out.name)
    metrics["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    metrics["bytes"] = path.stat().st_size
    metrics["parameters"] = sum(p.numel() for p in model.parameters())
    (args.work / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
