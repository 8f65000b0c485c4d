"""Train seven-emotion classifiers on FER-2013 `train`, evaluate on `val` (PublicTest), export one ONNX graph that
answers the mean of their probabilities.

    make train-emotion DATA=../shared/datasets            # GPU when there is one (AMP), else CPU
    python -m recipes.train_emotion                       # three members, ~5 min each on an H100
    python -m recipes.train_emotion --seeds 1235 --out …  # one member; run several at once, then the
                                                          # full command resumes their checkpoints
    python -m recipes.train_emotion --width 24 --epochs 12 --seeds 1234   # ~30 min on a 2-core CPU

Runs in the project's environment (`make install`). Each member is a VGG-style network on the 48×48 grey faces as
FER ships them (the service cuts the same framing from photos: the FER template in `config.toml`), with flips,
shifts, small rotations and zooms, and random erasing; label smoothing 0.1; AdamW with a one-cycle schedule;
checkpoint after every epoch so a run resumes (`--work`). Members differ only in their seed. Prints the val
accuracy per epoch; exports each member to `<work>/members/`, then `model.onnx` (`onnx_ensemble.mean_of`) that
takes raw grey pixels NCHW (N, 1, 48, 48), 0..255, and answers softmax probabilities in FER's label order.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from recipes.onnx_ensemble import mean_of
from recipes.onnx_weights import store_weights_fp16
from recipes.small_cnn import TrainingRun, default_device, vgg_features
from services.runtime.backends.onnx import OnnxBackend

REPO = Path(__file__).resolve().parents[2]
LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
SIZE = 48
SEED = 1234


class EmotionNet(nn.Module):
    """Four blocks of two 3×3 convolutions with batch norm (width, 2w, 4w, 8w channels; 48→24→12→6→3), global
    average pooling, dropout 0.4, linear. Normalisation and softmax are inside the exported graph."""

    def __init__(self, width: int) -> None:
        super().__init__()

        w = width
        self.features = vgg_features(1, (w, 2 * w, 4 * w, 8 * w))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.4), nn.Linear(8 * w, 7))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x / 127.5 - 1.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(x), dim=1)


def load(data_dir: Path) -> dict[str, np.ndarray]:
    with np.load(data_dir / "fer2013" / "fer2013_trainval.npz") as f:
        return {k: f[k] for k in ("images", "labels", "usage")}


def part(data: dict[str, np.ndarray], training: bool) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) of FER-2013's Training rows, or of the rest: the validation part (PublicTest)."""
    rows = (data["usage"] == "train") == training
    return data["images"][rows], data["labels"][rows]


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flip, rotate ±10°, zoom 0.9–1.1, shift ±4 px (one affine per face), then erase a random patch of a third."""
    n = x.shape[0]
    angle = (torch.rand(n, generator=generator) - 0.5) * (20 * torch.pi / 180)
    scale = 1 + (torch.rand(n, generator=generator) - 0.5) * 0.2
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    shift = (torch.rand(n, 2, generator=generator) - 0.5) * (16 / SIZE)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos * flip, -sin, shift[:, 0]], 1), torch.stack([sin * flip, cos, shift[:, 1]], 1)], 1
    )
    grid = nn.functional.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    x = nn.functional.grid_sample(x, grid, padding_mode="border", align_corners=False)
    erase = torch.rand(n, generator=generator) < 0.5
    top, left = torch.randint(0, SIZE - 16, (2,), generator=generator).tolist()
    x[erase.to(x.device), :, top : top + 16, left : left + 16] = 127.5
    return x


def evaluate(model: EmotionNet, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        predictions = torch.cat([model.logits(x[i : i + 512]).argmax(1) for i in range(0, len(x), 512)])
    return float((predictions == y).float().mean())


def train(
    data: dict[str, np.ndarray], width: int, epochs: int, deadline: float, work: Path, seed: int
) -> tuple[EmotionNet, float, int]:
    """One member: (model, val accuracy, epochs done); stops at `deadline` (time.time()) and resumes later."""
    device = torch.device(default_device())

    def on_device(images: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(images).float()[:, None].to(device), torch.from_numpy(labels).long().to(device)

    x_train, y_train = on_device(*part(data, training=True))
    x_val, y_val = on_device(*part(data, training=False))
    batch = 128
    torch.manual_seed(seed)  # the weights' initialisation
    run = TrainingRun(EmotionNet(width).to(device), epochs * ((len(x_train) + batch - 1) // batch), seed)
    model, generator = run.model, run.generator
    checkpoint = work / f"checkpoint-w{width}-e{epochs}-s{seed}.pt"
    start_epoch = run.resume(checkpoint)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    scaler = torch.amp.GradScaler(enabled=device.type == "cuda")
    done = start_epoch
    for epoch in range(start_epoch, epochs):
        if time.time() > deadline:
            print(f"seed {seed}: stopping after {epoch} epochs, the time budget is spent (rerun to resume)")
            break
        model.train()
        started, total = time.time(), 0.0
        for idx in torch.randperm(len(x_train), generator=generator).split(batch):
            idx = idx.to(device)
            with torch.autocast(device.type, torch.float16, enabled=device.type == "cuda"):
                loss = loss_fn(model.logits(augment(x_train[idx].clone(), generator)), y_train[idx])
            run.optimiser.zero_grad()
            scaler.scale(loss).backward()
            scaler.step(run.optimiser)
            scaler.update()
            run.schedule.step()
            total += loss.item() * len(idx)
        accuracy = evaluate(model, x_val, y_val)
        print(f"epoch {epoch + 1}/{epochs} loss {total / len(x_train):.4f} val accuracy {accuracy:.4f} "
              f"({time.time() - started:.0f}s, {device.type})", flush=True)  # fmt: skip
        run.save(checkpoint, epoch)
        done = epoch + 1
    return model.cpu(), evaluate(model.cpu(), x_val.cpu(), y_val.cpu()), done


def export(model: EmotionNet, path: Path) -> Path:
    import onnx

    model.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        model, (torch.zeros(1, 1, SIZE, SIZE),), str(path), input_names=["input"], output_names=["probabilities"],
        dynamic_axes={"input": {0: "batch"}, "probabilities": {0: "batch"}}, opset_version=17, dynamo=False,
    )  # fmt: skip
    proto = store_weights_fp16(onnx.load(str(path)))  # half the file; accuracy unchanged (model card)
    proto.ir_version = 8
    onnx.save(proto, str(path))
    return path


def evaluate_graph(path: Path, x: np.ndarray, y: np.ndarray) -> float:
    """Accuracy of the exported graph under ONNX Runtime, as the services run it (`OnnxBackend`)."""
    backend = OnnxBackend(path)
    x = x.astype(np.float32)[:, None]
    outputs = [backend.run({"input": x[i : i + 256]})["probabilities"] for i in range(0, len(x), 256)]
    return float((np.concatenate(outputs).argmax(1) == y).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--work", type=Path, default=REPO / ".cache" / "train-emotion")
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--minutes", type=float, default=1e9, help="wall-clock budget; a later run resumes")
    parser.add_argument("--seeds", default=",".join(str(SEED + i) for i in range(3)), help="one member per seed")
    parser.add_argument("--out", type=Path, default=REPO / "model-repo" / "emotion_faceplane")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    deadline = time.time() + args.minutes * 60
    data = load(args.data)
    members, metrics = [], {"width": args.width, "epochs": args.epochs, "seeds": seeds, "members": {}}
    for seed in seeds:
        model, accuracy, done = train(data, args.width, args.epochs, deadline, args.work, seed)
        if done < args.epochs:
            return
        members.append(export(model, args.work / "members" / f"s{seed}.onnx"))
        metrics["members"][seed] = round(accuracy, 4)
    metrics["params"] = sum(p.numel() for p in model.parameters()) * len(seeds)
    path = mean_of(members, args.out / "model.onnx")
    metrics |= {"val_accuracy": round(evaluate_graph(path, *part(data, training=False)), 4),
                "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "bytes": path.stat().st_size}  # fmt: skip
    (args.work / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
