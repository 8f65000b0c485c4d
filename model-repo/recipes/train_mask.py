"""Train our own mask / no-mask classifier on faces cut by our own detector and aligner.

    python -m recipes.train_mask --data ../shared/datasets    # prepare crops, train, evaluate, export
    python -m recipes.train_mask --validation [--epochs N …]  # choosing a recipe: train − validation
    python -m recipes.train_mask --seeds 1234 --teacher model-repo/mask_faceplane/model.onnx \
        --out model-repo/mask_faceplane_single                # one network distilled from the five

Runs in the project's environment (`make install`: torch, onnx). The crops come from the service path
itself: the detector service's decoding, MTCNN at its configured confidence (model-repo/mtcnn/config.toml, with
its retry on a replicated border), largest face → `align_face` to the attributes service's crop (224 px, padding
0.25) → `narrow_padding` to this model's padding → resize to the input size, as `AttributesModel` and `Classifier`
do. Where MTCNN finds no face (a quarter of the real masked faces), the service falls back to the whole image
(`resize_whole`, skip_detection) and the same narrowing; those images are trained on in that view, and detected
faces are also shown in the whole-image view now and then, so the net knows both.

Data: `<data>/mask/{prajnasb,chandrikadeb7}/{with_mask,without_mask}/`. Split: `splits.mask_is_test` (≈20% test,
by an md5 of the source face / augmentation family; the `augmented_image_*` files are left out altogether, as
their source is unknown); test images are never trained on and only read once, after the last epoch, for the
figures in metrics.json (with mask_mobilenetv2 on the same images and path to compare). The recipe (input size,
widths, epochs, augmentation, flip averaging) was chosen with `--validation`, which trains without
`splits.mask_is_validation` (≈20% of the train part, by another hash of the same group key) and reports on it,
never reading the test split; the final run trains on the whole train part. One member is trained per seed
(`--seeds`, five by default) and `model.onnx` answers the mean of their probabilities (`onnx_ensemble.mean_of`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from recipes.onnx_ensemble import mean_of
from recipes.small_cnn import SmallCnn, TrainingRun, default_device, export_onnx, predict
from recipes.splits import mask_is_augmented_copy, mask_is_test, mask_is_validation
from services.detector.align import align_face, resize_whole
from services.detector.decode import decode_image
from services.detector.model import MtcnnDetector
from services.runtime.backends.onnx import OnnxBackend
from services.runtime.classifier import Classifier
from services.runtime.modelrepo import CropConfig, load_model
from services.runtime.preprocess import narrow_padding

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("prajnasb", "chandrikadeb7")
FOLDERS = ("with_mask", "without_mask")  # label index = position: labels = ["mask", "no_mask"]
# The attributes service cuts this crop and hands the mask model the middle of it.
SERVICE_CROP = CropConfig(name="face_224_p025", size=224, padding=0.25)
PADDING = 0.1  # this model's [crop] padding: a little margin around the standard template (chin, mask edges)
# Chosen on the validation part (`--validation`; see the model card): 1.5× wider, 30 epochs and channel swaps
# instead of 16–32–64–128, 9 epochs and none; 96 px input came second; flip averaging changed one validation image,
# not worth twice the time, so the graph is the plain net.
INPUT_SIZE = 64
WIDTHS = (24, 48, 96, 192)  # channels of the four blocks
EPOCHS = 30
COLOUR_SWAP = 0.3  # share of training images with their RGB channels permuted
FLIP_AVERAGED = False  # export the mean over the image and its mirror image
PRETRAINED, PRETRAINED_PADDING = "mask_mobilenetv2", 0.0
WHOLE_VIEW_RATE = 0.25  # share of detected training faces shown in the fallback (whole-image) view instead
BATCH = 64
# Five members, the mean of their outputs: 1 + 1 validation errors against 2 + 4 for seed 1234 alone (card).
SEEDS = "1234,1235,1236,1237,1238"
# With `--teacher` (Hinton et al., "Distilling the knowledge in a neural network"): the share of the loss that is the
# teacher's softened answer, and the temperature. Common values, not tuned: the validation part is too small to.
DISTIL_WEIGHT, TEMPERATURE = 0.7, 2.0


def to_input(crops224: np.ndarray, size: int) -> np.ndarray:
    """The service's 224 px / padding 0.25 crops → this model's input (narrow_padding, then to_tensor's resize)."""
    narrowed = narrow_padding(crops224, SERVICE_CROP.padding, PADDING)
    return np.stack([cv2.resize(c, (size, size), interpolation=cv2.INTER_AREA) for c in narrowed])


def prepare(data_dir: Path, cache: Path, size: int) -> dict[str, np.ndarray]:
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
                image = decode_image(path.read_bytes(), 1 << 30)  # as the detector service decodes (EXIF turn)
                faces = detector.detect(image)  # the service's default confidence (and retry with a border)
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
                rows["face"].append(to_input(crop[None], size)[0])
                rows["whole"].append(to_input(whole[None], size)[0])
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


class FlipAveraged(nn.Module):
    """The exported graph: the mean of the softmax on the image and on its mirror image (NHWC, width = dim 2)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.model(x) + self.model(torch.flip(x, dims=[2]))) / 2


def augment(batch: torch.Tensor, generator: torch.Generator, colour_swap: float) -> torch.Tensor:
    """Per image: horizontal flip, rotation ±12°, scale 0.9–1.1, shift ±8%; brightness/contrast and a little colour
    jitter; occasionally grey; with probability `colour_swap` the RGB channels permuted (masks come in every colour;
    the net should look at shape, not hue) (NHWC, 0..255)."""
    n, device = batch.shape[0], batch.device
    x = batch.permute(0, 3, 1, 2)

    def uniform(lo: float, hi: float, *shape: int) -> torch.Tensor:  # drawn on the CPU: the same on any device
        return (lo + (hi - lo) * torch.rand(n, *shape, generator=generator)).to(device)

    angle = uniform(-12, 12) * math.pi / 180
    scale = uniform(0.9, 1.1)
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0).to(device)
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
    if colour_swap > 0:
        perms = torch.tensor([[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]])
        choice = torch.randint(0, 6, (n,), generator=generator)
        choice = torch.where(torch.rand(n, generator=generator) < colour_swap, choice, 0)
        x = torch.gather(x, 1, perms[choice].to(device)[:, :, None, None].expand_as(x))
    grey = (torch.rand(n, 1, 1, 1, generator=generator) < 0.1).float().to(device)
    x = grey * x.mean(dim=1, keepdim=True) + (1 - grey) * x
    gain = uniform(0.7, 1.3, 1, 1, 1) * uniform(0.92, 1.08, 3, 1, 1)
    bias = uniform(-30, 30, 1, 1, 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * uniform(0.75, 1.25, 1, 1, 1) + mean
    return (x * gain + bias).clamp(0, 255).permute(0, 2, 3, 1)


class Teacher:
    """An exported classifier of the same input (e.g. the five-member model), asked for its probabilities on the very
    augmented batch the student sees."""

    def __init__(self, path: Path) -> None:
        self.backend = OnnxBackend(path, intra_op_threads=2)

    def soft_targets(self, x: torch.Tensor) -> torch.Tensor:
        """softmax(logits / T) from the teacher's probabilities: p^(1/T), renormalised."""
        probs = self.backend.run({"images": x.detach().cpu().numpy().astype(np.float32)})["probabilities"]
        softened = torch.from_numpy(probs).clamp_min(1e-7).log() / TEMPERATURE
        return torch.softmax(softened, dim=1).to(x.device)


def distillation_loss(logits: torch.Tensor, soft_targets: torch.Tensor) -> torch.Tensor:
    """T² · KL(teacher_T ‖ student_T): the T² keeps its gradients on the scale of the hard loss's."""
    student = nn.functional.log_softmax(logits / TEMPERATURE, dim=1)
    return nn.functional.kl_div(student, soft_targets, reduction="batchmean") * TEMPERATURE**2


def train(
    data: dict[str, np.ndarray], rows: np.ndarray, args: argparse.Namespace, checkpoint: Path, seed: int
) -> SmallCnn:
    device = args.device
    teacher = Teacher(args.teacher) if args.teacher is not None else None
    face = torch.from_numpy(data["face"][rows]).float().to(device)
    whole = torch.from_numpy(data["whole"][rows]).float().to(device)
    detected = torch.from_numpy(data["detected"][rows]).to(device)
    y = torch.from_numpy(data["y"][rows]).long().to(device)
    torch.manual_seed(seed)
    model = SmallCnn(2, "softmax", tuple(args.widths)).to(device)
    run = TrainingRun(model, args.epochs * ((len(y) + BATCH - 1) // BATCH), seed)
    generator = run.generator
    start_epoch = run.resume(checkpoint)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05)
    for epoch in range(start_epoch, args.epochs):
        model.train()
        order = torch.randperm(len(y), generator=generator)
        started, total, correct = time.time(), 0.0, 0
        for i in range(0, len(order), BATCH):
            idx = order[i : i + BATCH]
            whole_view = (torch.rand(len(idx), generator=generator) < args.whole_view_rate).to(device)
            use_whole = ~detected[idx] | whole_view
            x = torch.where(use_whole[:, None, None, None], whole[idx], face[idx])
            x = augment(x, generator, args.colour_swap)
            logits = model.logits(x)
            loss = loss_fn(logits, y[idx])
            if teacher is not None:
                loss = (1 - DISTIL_WEIGHT) * loss + DISTIL_WEIGHT * distillation_loss(logits, teacher.soft_targets(x))
            run.step(loss)
            total += loss.item() * len(idx)
            correct += int((logits.argmax(1) == y[idx]).sum())
        print(f"epoch {epoch + 1}/{args.epochs} loss {total / len(y):.4f} train acc (augmented) "
              f"{correct / len(y):.4f} ({time.time() - started:.0f}s)", flush=True)  # fmt: skip
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


def validation_scores(data: dict[str, np.ndarray], rows: np.ndarray, probs: np.ndarray) -> dict:
    """Per source on the validation rows: `scores`, the errors and the mean log-loss (finer than a few errors)."""
    out = {}
    for s, source in enumerate(SOURCES):
        r = rows & (data["source"] == s)
        y, p = data["y"][r], probs[r]
        out[source] = {
            "images": int(r.sum()),
            "errors": int((p.argmax(1) != y).sum()),
            "log_loss": round(float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-7, 1)).mean()), 4),
            **scores(p.argmax(1), y, data["detected"][r]),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--work", type=Path, default=REPO / ".cache" / "train-mask")
    parser.add_argument("--input-size", type=int, default=INPUT_SIZE)
    parser.add_argument("--widths", type=int, nargs=4, default=list(WIDTHS))
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--colour-swap", type=float, default=COLOUR_SWAP)
    parser.add_argument("--whole-view-rate", type=float, default=WHOLE_VIEW_RATE)
    parser.add_argument("--seeds", default=SEEDS, help="one member per seed; several: the mean of their outputs")
    parser.add_argument("--out", type=Path, default=REPO / "model-repo" / "mask_faceplane")
    parser.add_argument("--prepare-only", action="store_true", help="cut and cache the crops, then stop")
    parser.add_argument("--device", default=default_device())
    parser.add_argument("--teacher", type=Path,
                        help="distil: each member also learns this exported model's answers (model.onnx of the "
                             "same input; for --validation, one trained with --validation)")  # fmt: skip
    parser.add_argument("--validation", action="store_true",
                        help="choosing a recipe: train without splits.mask_is_validation, report on it (plain and "
                             "flip-averaged); the test split is not read and nothing is exported")  # fmt: skip
    args = parser.parse_args()
    if args.teacher is not None and args.teacher.resolve() == (args.out / "model.onnx").resolve():
        parser.error(f"--teacher {args.teacher} would be overwritten by the student: give another --out")
    torch.set_num_threads(min(2, torch.get_num_threads()))
    data = prepare(args.data, args.work / f"crops_{args.input_size}.npz", args.input_size)
    print(f"{len(data['y'])} images, {int(data['test'].sum())} test; MTCNN found {int(data['detected'].sum())}",
          flush=True)  # fmt: skip
    if args.prepare_only:
        return
    tag = (f"s{args.input_size}-w{'_'.join(map(str, args.widths))}-e{args.epochs}-c{args.colour_swap}"
           f"-v{args.whole_view_rate}")  # fmt: skip
    if args.teacher is not None:
        tag += f"-t{hashlib.sha256(args.teacher.read_bytes()).hexdigest()[:8]}"
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.validation:
        validation = np.array([mask_is_validation(*name.split("/")[::2]) for name in data["name"]])
        started = time.time()
        inputs = data["face"][validation]  # the service path's view: aligned crop, or the whole image (fallback)
        members = [
            train(data, ~data["test"] & ~validation, args, args.work / f"validation-{tag}-s{seed}.pt", seed)
            for seed in seeds
        ]
        train_seconds = time.time() - started
        variants = {"plain": [predict(m, inputs) for m in members]}
        variants["flip_averaged"] = [predict(FlipAveraged(m), inputs) for m in members]
        metrics: dict = {}
        for name, member_probs in variants.items():
            scored = dict(zip(seeds, member_probs, strict=True))
            if len(seeds) > 1:
                scored["mean"] = np.mean(member_probs, axis=0)
            for seed, p in scored.items():
                probs = np.full((len(data["y"]), 2), np.nan, dtype=np.float32)
                probs[validation] = p
                metrics[f"{name}_s{seed}"] = validation_scores(data, validation, probs)
        metrics |= {"tag": tag, "seeds": seeds, "train_seconds_this_run": round(train_seconds)}
        (args.work / f"validation-{tag}-s{args.seeds.replace(',', '_')}.json").write_text(json.dumps(metrics, indent=2))
        print(json.dumps(metrics, indent=2))
        return
    started = time.time()
    members = [train(data, ~data["test"], args, args.work / f"checkpoint-{tag}-s{seed}.pt", seed) for seed in seeds]
    train_seconds = time.time() - started
    graphs = [FlipAveraged(m) if FLIP_AVERAGED else m for m in members]
    files = [
        export_onnx(g, args.input_size, args.work / f"members-{tag}" / f"s{seed}")
        for g, seed in zip(graphs, seeds, strict=True)
    ]
    path = mean_of(files, args.out / "model.onnx")
    # The exported graph through the service's Classifier on the cached test inputs (already at input size).
    classifier = Classifier(load_model(args.out.parent, args.out.name))
    test_inputs = data["face"][data["test"]]
    ours = np.full((len(data["y"]), 2), np.nan, dtype=np.float32)
    ours[data["test"]] = np.concatenate(
        [classifier.probabilities(test_inputs[i : i + 64]) for i in range(0, len(test_inputs), 64)]
    )
    torch_probs = np.mean([predict(g, test_inputs) for g in graphs], axis=0)
    metrics = evaluate(data, ours)
    metrics["onnx_vs_torch_max_abs_diff"] = float(np.abs(ours[data["test"]] - torch_probs).max())
    metrics["skipped_augmented_copies"] = int(data["skipped_augmented_copies"])
    metrics["recipe"] = tag
    metrics["seeds"] = seeds
    metrics["train_seconds_this_run"] = round(train_seconds)
    metrics["speed"] = speed(args.out.parent, args.out.name)
    metrics["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    metrics["bytes"] = path.stat().st_size
    metrics["parameters"] = sum(p.numel() for m in members for p in m.parameters())
    (args.work / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
