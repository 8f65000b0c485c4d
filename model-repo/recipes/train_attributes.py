"""Train the CelebA attribute classifier (ten attributes) on faces cut by our own detector and aligner.

    make train-attributes DATA=../shared/datasets     # prepare crops, train, evaluate, export ONNX

Runs in the project's environment (`make install`: torch, onnx). The crops come from the service path
itself (MTCNN landmarks → `align_face` with the crop spec below), so the model sees at serving time exactly what it
saw in training. Split: images 000001–006800 train, 006801–008000 (15%) are held back for evaluation only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torch import nn

from recipes.small_cnn import SmallCnn, TrainingRun, default_device, export_onnx, predict
from recipes.splits import CELEBA_TRAIN_LAST_ID
from services.detector.align import align_face
from services.detector.model import MtcnnDetector
from services.runtime.modelrepo import CropConfig, load_model

REPO = Path(__file__).resolve().parents[2]
ATTRIBUTES = [
    "Smiling", "Eyeglasses", "Wearing_Hat", "Bangs", "Mustache",
    "No_Beard", "Blond_Hair", "Black_Hair", "Pale_Skin", "Blurry",
]  # fmt: skip
# The attributes service asks the detector for this crop (hair and hats need the margin).
CROP = CropConfig(name="face_128_p025", size=128, padding=0.25)
INPUT_SIZE = 64
SEED = 1234


def read_labels(data_dir: Path) -> tuple[list[str], np.ndarray]:
    lines = (data_dir / "celeba" / "list_attr_celeba.txt").read_text().splitlines()
    header = lines[1].split()
    columns = [header.index(a) for a in ATTRIBUTES]
    names, rows = [], []
    for line in lines[2:]:
        parts = line.split()
        names.append(parts[0])
        values = np.array(parts[1:], dtype=np.int8)
        rows.append((values[columns] > 0).astype(np.float32))
    return names, np.stack(rows)


def face_crop(detector: MtcnnDetector, image: np.ndarray) -> np.ndarray | None:
    """The crop the service would get for the largest face, brought to the network's input size."""
    faces = detector.detect(image, min_confidence=0.5)
    if not faces:
        return None
    face = max(faces, key=lambda f: f.area)
    crop = align_face(image, face.landmarks, CROP.size, CROP.padding)
    return cv2.resize(crop, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA)


def prepare(data_dir: Path, cache: Path) -> dict[str, np.ndarray]:
    if cache.exists():
        return dict(np.load(cache))
    names, labels = read_labels(data_dir)
    detector = MtcnnDetector(load_model(REPO / "model-repo", "mtcnn"))
    crops, keep, ids = [], [], []
    for i, name in enumerate(names):
        image = np.asarray(Image.open(data_dir / "celeba" / "images" / name).convert("RGB"))
        crop = face_crop(detector, image)
        if crop is not None:
            crops.append(crop)
            keep.append(i)
            ids.append(int(Path(name).stem))
    data = {"x": np.stack(crops), "y": labels[keep], "id": np.array(ids), "total": np.array(len(names))}
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **data)
    return data


def augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Horizontal flips, shifts of up to 4 px and brightness/contrast jitter (NHWC, 0..255)."""
    n = batch.shape[0]
    flip = (torch.rand(n, generator=generator) < 0.5).to(batch.device)
    batch = torch.where(flip[:, None, None, None], batch.flip(2), batch)
    padded = torch.nn.functional.pad(batch.permute(0, 3, 1, 2), (4, 4, 4, 4), mode="replicate")
    dx, dy = torch.randint(0, 9, (2,), generator=generator).tolist()
    batch = padded[:, :, dy : dy + INPUT_SIZE, dx : dx + INPUT_SIZE].permute(0, 2, 3, 1)
    gain = 1 + (torch.rand(n, 1, 1, 1, generator=generator) - 0.5) * 0.4
    bias = (torch.rand(n, 1, 1, 1, generator=generator) - 0.5) * 40
    return (batch * gain.to(batch.device) + bias.to(batch.device)).clamp(0, 255)


def evaluate(model: SmallCnn, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return ((predict(model, x) > 0.5) == (y > 0.5)).mean(axis=0)


def train(data: dict[str, np.ndarray], epochs: int, checkpoint: Path, device: str) -> tuple[SmallCnn, dict]:
    is_train = data["id"] <= CELEBA_TRAIN_LAST_ID
    x_train, y_train = data["x"][is_train], data["y"][is_train]
    x_dev, y_dev = data["x"][~is_train], data["y"][~is_train]
    run = TrainingRun(SmallCnn(len(ATTRIBUTES), "sigmoid").to(device), epochs * ((len(x_train) + 127) // 128), SEED)
    model, generator = run.model, run.generator
    start_epoch = run.resume(checkpoint)
    loss_fn = nn.BCEWithLogitsLoss()
    xt, yt = torch.from_numpy(x_train).float().to(device), torch.from_numpy(y_train).to(device)
    for epoch in range(start_epoch, epochs):
        model.train()
        order = torch.randperm(len(xt), generator=generator)
        started, total = time.time(), 0.0
        for i in range(0, len(order), 128):
            idx = order[i : i + 128]
            loss = loss_fn(model.logits(augment(xt[idx], generator)), yt[idx])
            run.step(loss)
            total += loss.item() * len(idx)
        acc = evaluate(model, x_dev, y_dev)
        print(f"epoch {epoch + 1}/{epochs} loss {total / len(xt):.4f} dev mean acc {acc.mean():.4f} "
              f"({time.time() - started:.0f}s)", flush=True)  # fmt: skip
        run.save(checkpoint, epoch)
    acc = evaluate(model, x_dev, y_dev)
    majority = np.maximum(y_dev.mean(axis=0), 1 - y_dev.mean(axis=0))
    metrics = {
        "train_images": int(is_train.sum()),
        "dev_images": int((~is_train).sum()),
        "images_without_face": int(data["total"]) - len(data["id"]),
        "per_attribute": {a.lower(): round(float(v), 4) for a, v in zip(ATTRIBUTES, acc, strict=True)},
        "majority_baseline": {a.lower(): round(float(v), 4) for a, v in zip(ATTRIBUTES, majority, strict=True)},
        "mean_accuracy": round(float(acc.mean()), 4),
        "mean_majority_baseline": round(float(majority.mean()), 4),
    }
    return model, metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--work", type=Path, default=REPO / ".cache" / "train-attributes")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--out", type=Path, default=REPO / "model-repo" / "celeba_attributes")
    parser.add_argument("--device", default=default_device())
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    data = prepare(args.data, args.work / "crops.npz")
    print(f"{len(data['id'])} of {int(data['total'])} images have a face; training ...", flush=True)
    model, metrics = train(data, args.epochs, args.work / "checkpoint.pt", args.device)
    path = export_onnx(model, INPUT_SIZE, args.out)
    metrics["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    metrics["bytes"] = path.stat().st_size
    (args.work / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
