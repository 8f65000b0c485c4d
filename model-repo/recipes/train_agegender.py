"""Train age and gender heads on the embedder's dlib ResNet, fine-tune the whole graph, ship it as one ONNX file.

    make train-agegender DATA=../shared/datasets    # features (CPU ~7 min), heads (~1 min), fine-tuning (~12 min)

Runs in the project environment (`make install`: onnx2torch, dlib). The faces are cut by the service path itself
(MTCNN landmarks → `align_face` with the embedder's 150 px dlib template; the whole image where no face is found, as
the service does with skip_detection). The backbone is frozen: features are the global average of its first three
stages (32, 64 and 128 channels) plus the 256-d vector before its last layer, computed once for five views of each
face (see `prepare`) and cached. Two small heads learn from them: gender (two-way softmax) and age (a distribution
over 0–100 years trained against a Gaussian around the true age, answered as its expectation). The exported graph is
the backbone with the heads appended, so the service runs one model on one crop. Split: `splits.utkface_is_test`
(15%, never trained on).

Then (`--finetune-epochs`, 6 by default; CPU ~2 min an epoch) that whole graph is fine-tuned end to end on the
service's aligned chips and their mirrors (converted to PyTorch with onnx2torch, as the torch backend does),
holding out `splits.utkface_is_validation` to watch, and exported again. The frozen identity features had bounded
gender at 93.5%; fine-tuned, 94.6% (model card).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, compose, helper
from torch import nn

from recipes.onnx_weights import store_weights_fp16
from recipes.small_cnn import default_device, device_of
from recipes.splits import utkface_is_test, utkface_is_validation
from services.detector.model import MtcnnDetector
from services.detector.pipeline import FacePipeline
from services.runtime.modelrepo import load_model

REPO = Path(__file__).resolve().parents[2]
BACKBONE = REPO / "model-repo" / "dlib_resnet" / "model.onnx"
SEED = 1234
MAX_AGE = 100
AGE_SIGMA = 2.0
FEATURES = 32 + 64 + 128 + 256
VIEWS = 5


def stage_outputs(model: onnx.ModelProto) -> dict[str, str]:
    """The last ReLU of each stage (by channel count, from shape inference) and the pooled 256-d vector."""
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in inferred.graph.value_info}
    last_relu: dict[int, str] = {}
    for node in model.graph.node:
        shape = shapes.get(node.output[0], [])
        if node.op_type == "Relu" and len(shape) == 4 and shape[1] in (32, 64, 128):
            last_relu[shape[1]] = node.output[0]
    flatten = next(n.output[0] for n in model.graph.node if n.op_type == "Flatten")
    return {"s32": last_relu[32], "s64": last_relu[64], "s128": last_relu[128], "pooled": flatten}


def with_features(model: onnx.ModelProto) -> onnx.ModelProto:
    """The backbone with one extra output `features` (N, 32+64+128+256): pooled stages and the final vector."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    stages = stage_outputs(model)
    pooled = []
    for key in ("s32", "s64", "s128"):
        gap, flat = f"feat_{key}_gap", f"feat_{key}"
        graph.node.append(helper.make_node("GlobalAveragePool", [stages[key]], [gap], name=gap))
        graph.node.append(helper.make_node("Flatten", [gap], [flat], name=flat, axis=1))
        pooled.append(flat)
    graph.node.append(helper.make_node("Concat", [*pooled, stages["pooled"]], ["features"], name="features", axis=1))
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", FEATURES]))
    return model


def read_rows(data_dir: Path) -> list[tuple[str, float, int]]:
    with (data_dir / "utkface" / "labels.csv").open() as f:
        return [(r["file"], float(r["age"]), int(r["gender"])) for r in csv.DictReader(f)]


def jittered(chip: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The chip moved, scaled and turned a little (as a loose or tight pre-cropped face would come), maybe mirrored."""
    size = chip.shape[0]
    scale, angle = rng.uniform(0.75, 1.35), rng.uniform(-12, 12)
    matrix = cv2.getRotationMatrix2D((size / 2, size / 2), angle, scale)
    matrix[:, 2] += rng.uniform(-0.08, 0.08, 2) * size
    out = cv2.warpAffine(chip, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out[:, ::-1] if rng.random() < 0.5 else out


def service_path() -> tuple[FacePipeline, Any]:
    """The detector and the embedder's crop (dlib's 150 px chip), as the service path cuts faces."""
    crop = load_model(REPO / "model-repo", "dlib_resnet").config.crop
    return FacePipeline(MtcnnDetector(load_model(REPO / "model-repo", "mtcnn")), 10**8, 1), crop


def service_faces(data_dir: Path, cache: Path) -> dict[str, np.ndarray]:
    """Every UTKFace image as the service path would send it, uint8 (N, 150, 150, 3): `chip`, the aligned chip (the
    whole image where no face is found), and `whole`, the whole image resized as skip_detection sends it; with
    labels and splits. Cut once, cached (2.7 GB), for the heads' features and for the fine-tuning."""
    if cache.exists():
        return dict(np.load(cache))
    rows = read_rows(data_dir)
    pipeline, crop = service_path()
    chips = np.zeros((len(rows), crop.size, crop.size, 3), np.uint8)
    wholes, found, started = np.zeros_like(chips), np.zeros(len(rows), bool), time.time()
    for i, (name, _, _) in enumerate(rows):
        data = (data_dir / "utkface" / "images" / name).read_bytes()
        result = pipeline.run(data, [crop])
        wholes[i] = pipeline.run(data, [crop], skip_detection=True).faces[0].crops[0]
        found[i] = bool(result.faces)
        chips[i] = result.faces[0].crops[0] if result.faces else wholes[i]
        if (i + 1) % 2000 == 0:
            print(f"{i + 1}/{len(rows)} faces cut ({time.time() - started:.0f}s)", flush=True)
    out = {
        "chip": chips,
        "whole": wholes,
        "found": found,
        "age": np.array([r[1] for r in rows], dtype=np.float32),
        "female": np.array([r[2] for r in rows], dtype=np.int64),
        "test": np.array([utkface_is_test(r[0]) for r in rows]),
        "validation": np.array([utkface_is_validation(r[0]) for r in rows]),
    }
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **out)
    return out


def prepare(faces: dict[str, np.ndarray], cache: Path) -> dict[str, np.ndarray]:
    """Features of every face, cached: (N, VIEWS, FEATURES). View 0 is the service's aligned chip, the one
    evaluated; the others (its mirror, two jittered copies, the whole image resized as skip_detection would) teach
    the heads to answer for faces that come less well framed."""
    if cache.exists():
        return dict(np.load(cache))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    net = ort.InferenceSession(with_features(onnx.load(str(BACKBONE))).SerializeToString(), options)
    rng = np.random.default_rng(SEED)
    features = []
    batch: list[np.ndarray] = []

    def flush() -> None:
        views = np.stack(batch)  # (n, VIEWS, 150, 150, 3)
        out = net.run(["features"], {"input": np.ascontiguousarray(views.reshape(-1, *views.shape[2:]))})[0]
        features.append(out.reshape(len(batch), VIEWS, -1))
        batch.clear()

    for chip, whole in zip(faces["chip"], faces["whole"], strict=True):
        batch.append(np.stack([chip, chip[:, ::-1], jittered(chip, rng), jittered(chip, rng), whole]))
        if len(batch) == 16:
            flush()
    if batch:
        flush()
    labels = {k: faces[k] for k in ("age", "female", "test", "found")}
    data = {"x": np.concatenate(features).astype(np.float32), **labels}
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **data)
    return data


class Heads(nn.Module):
    """Features → (probabilities of [female, male], the label order of config.toml; expected age in years)."""

    def __init__(self, mean: np.ndarray, std: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("mean", torch.from_numpy(mean))
        self.register_buffer("std", torch.from_numpy(std))
        self.trunk = nn.Sequential(nn.Dropout(0.2), nn.Linear(mean.size, 512), nn.ReLU(), nn.Dropout(0.5))
        self.gender = nn.Linear(512, 2)
        self.age = nn.Linear(512, MAX_AGE + 1)
        self.register_buffer("years", torch.arange(MAX_AGE + 1, dtype=torch.float32))

    def logits(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk((features - self.mean) / self.std)
        return self.gender(h), self.age(h)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gender, age = self.logits(features)
        return torch.softmax(gender, dim=1), torch.softmax(age, dim=1) @ self.years


def age_targets(ages: torch.Tensor) -> torch.Tensor:
    years = torch.arange(MAX_AGE + 1, dtype=torch.float32)
    weights = torch.exp(-0.5 * ((years[None] - ages.clamp(0, MAX_AGE)[:, None]) / AGE_SIGMA) ** 2)
    return weights / weights.sum(dim=1, keepdim=True)


def evaluate(model: Heads, x: np.ndarray, age: np.ndarray, female: np.ndarray) -> dict[str, float]:
    """On the aligned chip (view 0, what the service path sends) and on the whole image (skip_detection)."""
    model.eval()
    out = {}
    for view, suffix in ((0, ""), (VIEWS - 1, "_whole_image")):
        with torch.no_grad():
            p, a = model(torch.from_numpy(x[:, view]))
        # label order of config.toml: index 0 female, 1 male
        out[f"age_mae{suffix}"] = float(np.abs(a.numpy() - age).mean())
        out[f"gender_accuracy{suffix}"] = float(((p[:, 0].numpy() > 0.5) == (female == 1)).mean())
    return out


def train(data: dict[str, np.ndarray], epochs: int) -> tuple[Heads, dict[str, float]]:
    torch.manual_seed(SEED)
    train_mask = ~data["test"]
    x_train = data["x"][train_mask].reshape(-1, data["x"].shape[-1])  # every view is a sample
    age_train = np.repeat(data["age"][train_mask], VIEWS)
    female_train = np.repeat(data["female"][train_mask], VIEWS)
    model = Heads(x_train.mean(axis=0), x_train.std(axis=0) + 1e-6)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=5e-2)
    steps = epochs * ((len(x_train) + 255) // 256)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=2e-3, total_steps=steps)
    generator = torch.Generator().manual_seed(SEED)
    xt, at = torch.from_numpy(x_train), torch.from_numpy(age_train)
    # label 0 = female in the service's order, so the class index is 1 - female (male = 1)
    gt = torch.from_numpy(1 - female_train)
    test = (data["x"][data["test"]], data["age"][data["test"]], data["female"][data["test"]])
    for epoch in range(epochs):
        model.train()
        for idx in torch.randperm(len(xt), generator=generator).split(256):
            gender_logits, age_logits = model.logits(xt[idx])
            expected = torch.softmax(age_logits, dim=1) @ model.years
            loss = (
                nn.functional.cross_entropy(gender_logits, gt[idx])
                + nn.functional.kl_div(
                    torch.log_softmax(age_logits, dim=1), age_targets(at[idx]), reduction="batchmean"
                )
                + 0.05 * (expected - at[idx]).abs().mean()
            )
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
        if (epoch + 1) % 5 == 0 or epoch + 1 == epochs:
            print(f"epoch {epoch + 1}/{epochs} test {evaluate(model, *test)}", flush=True)
    return model, evaluate(model, *test)


def export(model: Heads, out_dir: Path) -> Path:
    """Backbone (fp16-stored weights, as the embedder ships) + heads → one graph: input → gender, age."""
    from recipes.dlib_resnet_export import finish  # needs dlib: imported only here, for the export

    model.eval()
    heads_path = out_dir / "heads.onnx"
    torch.onnx.export(
        model, (torch.zeros(1, FEATURES),), str(heads_path), input_names=["features"],
        output_names=["gender_probabilities", "age"],
        dynamic_axes={"features": {0: "batch"}, "gender_probabilities": {0: "batch"}, "age": {0: "batch"}},
        opset_version=17, dynamo=False,
    )  # fmt: skip
    heads = onnx.load(str(heads_path))
    heads_path.unlink()
    backbone = with_features(onnx.load(str(BACKBONE)))
    heads.ir_version = backbone.ir_version
    del heads.opset_import[:]
    heads.opset_import.extend(backbone.opset_import)
    heads = compose.add_prefix(heads, "head_", rename_inputs=False, rename_outputs=False)  # keep the output names
    merged = compose.merge_models(backbone, heads, io_map=[("features", "features")])
    path = out_dir / "model.onnx"
    finish(merged, path)
    return path


def evaluate_graph(model: nn.Module, chips: np.ndarray, age: np.ndarray, female: np.ndarray) -> dict[str, float]:
    model.eval()
    genders, ages = [], []
    device = device_of(model)
    with torch.inference_mode():
        for i in range(0, len(chips), 128):
            p, a = model(torch.from_numpy(chips[i : i + 128]).to(device))
            genders.append(p[:, 0].cpu().numpy())
            ages.append(a.cpu().numpy())
    p, a = np.concatenate(genders), np.concatenate(ages)
    return {"age_mae": float(np.abs(a - age).mean()), "gender_accuracy": float(((p > 0.5) == (female == 1)).mean())}


def finetune(
    path: Path, data: dict[str, np.ndarray], epochs: int, lr: float, device: str
) -> tuple[nn.Module, dict[str, float]]:
    """The exported graph, backbone and heads, trained end to end on the chips (mirrored at random) of the
    training part less validation: cross-entropy on gender plus 0.02 × the age error in years."""
    from onnx2torch import convert  # the project environment's converter (the torch backend's)

    from services.runtime.backends.torch import inline_weight_casts

    torch.manual_seed(SEED)
    model = convert(inline_weight_casts(onnx.load(str(path)))).to(device)
    sets = {k: (data["chip"][data[k]], data["age"][data[k]], data["female"][data[k]]) for k in ("validation", "test")}
    train_idx = np.flatnonzero(~data["test"] & ~data["validation"])
    batches = (len(train_idx) + 31) // 32
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=epochs * batches, pct_start=0.15)
    rng = np.random.default_rng(SEED)
    for epoch in range(epochs):
        model.train()
        started = time.time()
        for idx in np.array_split(rng.permutation(train_idx), batches):
            x = data["chip"][idx].copy()
            mirror = rng.random(len(idx)) < 0.5
            x[mirror] = x[mirror][:, :, ::-1]
            p, a = model(torch.from_numpy(x).to(device))
            gender = torch.from_numpy(1 - data["female"][idx]).to(device)  # config.toml's order: 0 female, 1 male
            loss = (
                nn.functional.nll_loss(torch.log(p.clamp_min(1e-7)), gender)
                + 0.02 * (a - torch.from_numpy(data["age"][idx]).to(device)).abs().mean()
            )
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
        print(f"fine-tuning epoch {epoch + 1}/{epochs} ({time.time() - started:.0f}s): validation "
              f"{evaluate_graph(model, *sets['validation'])}", flush=True)  # fmt: skip
    return model, evaluate_graph(model, *sets["test"])


def export_graph(model: nn.Module, path: Path) -> None:
    """The fine-tuned graph back to ONNX, weights stored fp16 as the embedder ships them, constant pads folded."""
    from recipes.dlib_resnet_export import finish  # needs dlib: imported only here, for the export

    torch.onnx.export(
        model.cpu().eval(), (torch.zeros(1, 150, 150, 3, dtype=torch.uint8),), str(path), input_names=["input"],
        output_names=["gender_probabilities", "age"],
        dynamic_axes={"input": {0: "batch"}, "gender_probabilities": {0: "batch"}, "age": {0: "batch"}},
        opset_version=17, dynamo=False,
    )  # fmt: skip
    finish(store_weights_fp16(onnx.load(str(path))), path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--work", type=Path, default=REPO / ".cache" / "train-agegender")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--finetune-epochs", type=int, default=6, help="0: ship the heads on the frozen backbone")
    parser.add_argument("--finetune-lr", type=float, default=3e-5)
    parser.add_argument("--device", default=default_device(), help="for the fine-tuning (the rest runs on the CPU)")
    parser.add_argument("--out", type=Path, default=REPO / "model-repo" / "agegender_faceplane")
    args = parser.parse_args()
    faces = service_faces(args.data, args.work / "faces.npz")
    data = prepare(faces, args.work / "features.npz")
    print(f"{len(data['x'])} faces ({data['found'].mean():.1%} found by the detector); training ...", flush=True)
    model, metrics = train(data, args.epochs)
    args.out.mkdir(parents=True, exist_ok=True)
    path = export(model, args.out)
    if args.finetune_epochs > 0:
        print(f"heads on the frozen backbone: test {metrics}; fine-tuning ...", flush=True)
        tuned, metrics = finetune(path, faces, args.finetune_epochs, args.finetune_lr, args.device)
        export_graph(tuned, path)
        metrics["finetune_train_images"] = int((~faces["test"] & ~faces["validation"]).sum())
    metrics.update(
        train_images=int((~data["test"]).sum()), test_images=int(data["test"].sum()),
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(), bytes=path.stat().st_size,
    )  # fmt: skip
    args.work.mkdir(parents=True, exist_ok=True)
    (args.work / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
