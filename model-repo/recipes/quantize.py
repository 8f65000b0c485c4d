"""Faster variants of a model for the CPU: ONNX Runtime static int8, written beside it as a model folder of its own.

    python -m recipes.quantize emotion_faceplane [--data ../shared/datasets] [--faces 300]
    python -m recipes.quantize --card emotion_faceplane_int8      # the card again, with make eval's figures

Writes model-repo/<name>_int8/: each network of the model quantised (QDQ, weights int8 per channel, activations
uint8 calibrated by min/max; the fully connected heads, Softmax/Sigmoid and the ensembles' Mean stay float), its
config.toml (the original's, renamed and versioned), a
quantize.json with what was measured here and a card.md written from it. The calibration faces are a few hundred
of the model's own *train* split (model-repo/recipes/splits.py; never the data `make eval` measures on), cut as the
service path cuts them: the in-process detector (the detector service's model), the model's own crop, and the
service's own code (its model class) from crop to tensor; the tensors it hands its network are what calibrates.

Every form is measured beside the original, and the card shows them: QDQ and QOperator graphs, per channel or per
tensor, ms per face with one ONNX Runtime thread at batch 1 and 16, and how close each stays to the original on
other train faces (top-1 agreement, largest probability change, embedding cosine). On this CPU they run within noise
of each other, so the form written is fixed (FORM, below) rather than picked by a timing on a shared machine.
Also measured, never written (they did not help here): the original as ONNX Runtime saves it after its own
optimisation (ORT_ENABLE_EXTENDED / ALL, what the service's session does at every start anyway) and an fp16 graph
(`--fp16`). The accuracy that decides whether a variant may become a default comes from `make eval` through the
services (`python -m recipes.evaluate --variant`, see there), which the card quotes.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process
from PIL import Image

from recipes.splits import CELEBA_TRAIN_LAST_ID, mask_is_augmented_copy, mask_is_test, utkface_is_test
from services.agegender.model import age_gender_model
from services.attributes.model import AttributesModel
from services.detector.detectors import configured_detector
from services.detector.pipeline import FacePipeline
from services.embedder.model import EmbeddingModel
from services.emotion.model import EmotionModel
from services.runtime.backends.base import InferenceBackend
from services.runtime.backends.onnx import OnnxBackend
from services.runtime.modelrepo import CropConfig, LoadedModel, load_model, read_config

REPO = Path(__file__).resolve().parents[2]
MODEL_REPO = REPO / "model-repo"
# The attributes service's two models: the mask model gets the middle of the attributes model's crop.
ATTRIBUTES_MODEL, MASK_MODEL = "celeba_attributes", "mask_faceplane"
# Ops quantised: the convolutions and what lies between them. The fully connected heads (Gemm, MatMul: a few
# thousand multiply-adds a face) stay float, as do Softmax, Sigmoid and the ensembles' Mean, so the answers keep
# their resolution: with the heads quantised agegender_faceplane's age moved 0.49 years a face on average against
# the original, 0.31 without (train faces, 2026-12-02).
OPS = ["Conv", "Add", "Mul", "MaxPool", "AveragePool", "GlobalAveragePool", "Pad"]


@dataclass(frozen=True)
class Family:
    """How the service runs a model of this kind (crops → its model class) and which train faces calibrate it."""

    images: Callable[[Path, np.random.Generator, int], list[tuple[bytes, bool]]]  # (bytes, skip_detection)
    crop_of: Callable[[LoadedModel], CropConfig]  # the crop the service asks the detector for
    runner: Callable[[LoadedModel], Callable[[np.ndarray], Any]]  # the service's model class, crops → answers
    metric: str  # how close a variant stays: "top1" (probabilities) or "cosine" (embeddings)


def png(image: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, "PNG")
    return out.getvalue()


def fer_train(data: Path, rng: np.random.Generator, count: int) -> list[tuple[bytes, bool]]:
    """FER-2013 `train` faces sent both ways `make eval` sends its `val` faces: half as the pre-cropped 48 px faces
    they are (skip_detection), half upscaled ×4 through detection."""
    with np.load(data / "fer2013" / "fer2013_trainval.npz") as fer:
        usage, pixels = fer["usage"], fer["images"]
    picked = rng.choice(np.flatnonzero(usage == "train"), count, replace=False)
    faces = [Image.fromarray(pixels[i]).convert("RGB") for i in picked]
    half = count // 2
    return [(png(np.asarray(f)), True) for f in faces[:half]] + [
        (png(np.asarray(f.resize((192, 192), Image.BICUBIC))), False) for f in faces[half:]
    ]


def utkface_train(data: Path, rng: np.random.Generator, count: int) -> list[tuple[bytes, bool]]:
    root = data / "utkface"
    names = [line.split(",")[0] for line in (root / "labels.csv").read_text().splitlines()[1:]]
    names = [n for n in names if not utkface_is_test(n)]
    folder = root / "images" if (root / "images").exists() else root
    return [((folder / names[i]).read_bytes(), False) for i in rng.choice(len(names), count, replace=False)]


def celeba_train(data: Path, rng: np.random.Generator, count: int) -> list[tuple[bytes, bool]]:
    ids = rng.choice(np.arange(1, CELEBA_TRAIN_LAST_ID + 1), count, replace=False)
    return [((data / "celeba" / "images" / f"{i:06d}.jpg").read_bytes(), False) for i in ids]


def mask_train(data: Path, rng: np.random.Generator, count: int) -> list[tuple[bytes, bool]]:
    files = [p for source in ("prajnasb", "chandrikadeb7") for folder in ("with_mask", "without_mask")
             for p in sorted((data / "mask" / source / folder).iterdir())
             if p.is_file() and not mask_is_test(source, p.name) and not mask_is_augmented_copy(p.name)]  # fmt: skip
    return [(files[i].read_bytes(), False) for i in rng.choice(len(files), count, replace=False)]


def faces_for_embedder(data: Path, rng: np.random.Generator, count: int) -> list[tuple[bytes, bool]]:
    """dlib's ResNet was trained elsewhere; the verification lists are what `make eval` measures it on, so it is
    calibrated on train faces of our other sets, half UTKFace, half CelebA."""
    return utkface_train(data, rng, count // 2) + celeba_train(data, rng, count - count // 2)


def own_crop(model: LoadedModel) -> CropConfig:
    assert model.config.crop is not None, f"{model.config.name} has no [crop]"
    return model.config.crop


def attributes_crop(model: LoadedModel) -> CropConfig:
    del model  # the mask model sees the middle of the attributes model's crop
    return own_crop(load_model(MODEL_REPO, ATTRIBUTES_MODEL))


FAMILIES: dict[str, Family] = {
    "emotion": Family(fer_train, own_crop, lambda m: EmotionModel(m).predict, "top1"),
    "mask": Family(mask_train, attributes_crop,
                   lambda m: AttributesModel(load_model(MODEL_REPO, ATTRIBUTES_MODEL), m).predict, "top1"),
    "attributes": Family(celeba_train, own_crop,
                         lambda m: AttributesModel(m, load_model(MODEL_REPO, MASK_MODEL)).predict, "top1"),
    "agegender": Family(utkface_train, own_crop, lambda m: age_gender_model(m).predict, "top1"),
    "embedder": Family(faces_for_embedder, own_crop, lambda m: EmbeddingModel(m).embed, "cosine"),
}  # fmt: skip


def family_of(name: str) -> str:
    for prefix, family in (("emotion_", "emotion"), ("mask_", "mask"), ("celeba_attributes", "attributes"),
                           ("agegender_", "agegender"), ("dlib_resnet", "embedder")):  # fmt: skip
        if name.startswith(prefix):
            return family
    raise SystemExit(f"{name}: no calibration data known for this model (detectors and the generator are not done)")


class Recorder(InferenceBackend):
    """A backend that keeps every input it is handed, then runs the real one: the service's tensors, exactly."""

    def __init__(self, inner: InferenceBackend) -> None:
        self.inner, self.kind = inner, inner.kind
        self.input_names, self.output_names = inner.input_names, inner.output_names
        self.seen: list[dict[str, np.ndarray]] = []

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.seen.append({k: np.array(v) for k, v in inputs.items()})
        return self.inner.run(inputs)


def service_tensors(
    name: str, images: list[tuple[bytes, bool]], max_faces: int = 1, batch: int = 16
) -> dict[str, dict[str, np.ndarray]]:
    """Per network of the model, its inputs for the faces of `images` ((bytes, skip_detection); the `max_faces`
    largest of each) as the service path feeds them."""
    family = FAMILIES[family_of(name)]
    model = load_model(MODEL_REPO, name)
    recorders = {key: Recorder(backend) for key, backend in model.backends.items()}
    model.backends.update(recorders)
    predict = family.runner(model)
    crop = family.crop_of(model)
    pipeline = FacePipeline(configured_detector(MODEL_REPO), 10**8, max_faces)
    crops = []
    for data_bytes, skip in images:
        result = pipeline.run(data_bytes, [crop], max_faces=max_faces, skip_detection=skip)
        if not result.faces:  # as make eval does: the whole image as the face
            result = pipeline.run(data_bytes, [crop], skip_detection=True)
        crops += [face.crops[0] for face in result.faces]
    for i in range(0, len(crops), batch):
        predict(np.stack(crops[i : i + batch]))
    return {
        key: {arg: np.concatenate([seen[arg] for seen in rec.seen]) for arg in rec.input_names}
        for key, rec in recorders.items()
    }


def train_tensors(name: str, data: Path, count: int, seed: int) -> dict[str, dict[str, np.ndarray]]:
    """`count` faces of the model's own train split, as the service path feeds them to each network."""
    return service_tensors(name, FAMILIES[family_of(name)].images(data, np.random.default_rng(seed), count))


class Batches(CalibrationDataReader):
    def __init__(self, tensors: dict[str, np.ndarray], batch: int = 16) -> None:
        total = len(next(iter(tensors.values())))
        self.batches = iter([{k: v[i : i + batch] for k, v in tensors.items()} for i in range(0, total, batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.batches, None)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def session(path: Path, level: ort.GraphOptimizationLevel = ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
            save_to: Path | None = None) -> ort.InferenceSession:  # fmt: skip
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.graph_optimization_level = level
    if save_to is not None:
        options.optimized_model_filepath = str(save_to)
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def ms_per_face(path: Path, tensors: dict[str, np.ndarray], repeats: int = 10) -> dict[str, float]:
    """As the service runs it (OnnxBackend, one thread), best of `repeats` per batch size: the machine is shared."""
    backend = OnnxBackend(path, intra_op_threads=1)
    out = {}
    for batch in (1, 16):
        inputs = {k: v[:batch] for k, v in tensors.items()}
        backend.run(inputs)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            backend.run(inputs)
            times.append(time.perf_counter() - start)
        out[f"ms_per_face_batch_{batch}"] = round(1000 * min(times) / batch, 3)
    return out


def outputs(path: Path, tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    backend = OnnxBackend(path, intra_op_threads=1)
    total = len(next(iter(tensors.values())))
    runs = [backend.run({k: v[i : i + 32] for k, v in tensors.items()}) for i in range(0, total, 32)]
    return {name: np.concatenate([r[name] for r in runs]) for name in backend.output_names}


def closeness(reference: dict[str, np.ndarray], variant: dict[str, np.ndarray], metric: str) -> dict[str, float]:
    """How close a variant's outputs stay to the original's, per output, on the same tensors."""
    out: dict[str, float] = {}
    for name, ref in reference.items():
        got = variant[name].astype(np.float64)
        ref = ref.astype(np.float64)
        out[f"{name}: largest change"] = float(np.abs(got - ref).max())
        if metric == "cosine" and ref.ndim == 2:
            cos = (got * ref).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(ref, axis=1)
            out[f"{name}: mean cosine"], out[f"{name}: lowest cosine"] = float(cos.mean()), float(cos.min())
        elif ref.ndim == 2 and ref.shape[1] > 1 and np.allclose(ref.sum(1), 1, atol=1e-3):
            out[f"{name}: top-1 agreement"] = float((got.argmax(1) == ref.argmax(1)).mean())
        elif ref.ndim == 2:  # independent sigmoids (the attributes): each decision at 0.5
            out[f"{name}: decisions agreeing"] = float(((got >= 0.5) == (ref >= 0.5)).mean())
        else:
            out[f"{name}: mean change"] = float(np.abs(got - ref).mean())
    return out


def quantised(source: Path, out: Path, tensors: dict[str, np.ndarray], fmt: QuantFormat, per_channel: bool) -> None:
    quantize_static(
        str(source), str(out), Batches(tensors), quant_format=fmt, per_channel=per_channel,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, op_types_to_quantize=OPS,
        extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
    )  # fmt: skip


def for_the_quantiser(path: Path) -> None:
    """In place: Constant nodes become initializers, and a Pad's constant shared with other nodes gets a copy of its
    own (the quantiser looks for a Pad's inputs among the initializers, and renames what it quantises)."""
    model = onnx.load(str(path))
    graph = model.graph
    keep = []
    for node in graph.node:
        if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
            graph.initializer.append(onnx.numpy_helper.from_array(
                onnx.numpy_helper.to_array(node.attribute[0].t), node.output[0]))  # fmt: skip
        else:
            keep.append(node)
    del graph.node[:]
    graph.node.extend(keep)
    initializers = {i.name: i for i in graph.initializer}
    for node in graph.node:
        if node.op_type != "Pad":
            continue
        for k, name in enumerate(node.input):
            if name in initializers and k > 0:
                copy = onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(initializers[name]), f"{node.name}/{k}")
                graph.initializer.append(copy)
                node.input[k] = copy.name
    onnx.save(model, str(path))


def fp16(source: Path, out: Path) -> None:
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(source)), keep_io_types=True)
    onnx.save(model, str(out))


def candidates(name: str, data: Path, count: int, try_fp16: bool) -> dict[str, Any]:
    """Every form of every network of the model measured beside the original; the chosen int8 form per network."""
    model = load_model(MODEL_REPO, name)
    metric = FAMILIES[family_of(name)].metric
    print(f"{name}: cutting {count} calibration and {count} check faces (train split)", flush=True)
    calibration = train_tensors(name, data, count, seed=0)
    check = train_tensors(name, data, count, seed=1)
    work = Path(tempfile.mkdtemp(prefix=f"quantize-{name}-"))
    report: dict[str, Any] = {"networks": {}, "work": str(work)}
    for key, filename in model.config.files.items():
        original = MODEL_REPO / name / filename
        reference = outputs(original, check[key])
        rows: dict[str, dict[str, Any]] = {"original": {**ms_per_face(original, check[key]), "path": str(original),
                                                        "bytes": original.stat().st_size}}  # fmt: skip
        prepared = work / f"{key}.pre.onnx"
        quant_pre_process(str(original), str(prepared))  # shape inference, Casts folded, BN folded into Conv
        for_the_quantiser(prepared)
        for label, level in (("ort_extended", ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED),
                             ("ort_all", ort.GraphOptimizationLevel.ORT_ENABLE_ALL)):  # fmt: skip
            path = work / f"{key}.{label}.onnx"
            session(original, level, save_to=path)
            rows[label] = {"path": str(path)}
        if try_fp16:
            rows["fp16"] = {"path": str(work / f"{key}.fp16.onnx")}
            try:
                fp16(prepared, Path(rows["fp16"]["path"]))
            except Exception as exc:  # reported, not fatal: fp16 is only measured
                rows["fp16"] = {"failed": str(exc)[:200]}
        for fmt in (QuantFormat.QDQ, QuantFormat.QOperator):
            for per_channel in (True, False):
                label = f"int8_{fmt.name.lower()}_{'per_channel' if per_channel else 'per_tensor'}"
                path = work / f"{key}.{label}.onnx"
                started = time.time()
                quantised(prepared, path, calibration[key], fmt, per_channel)
                rows[label] = {"path": str(path), "quantise_s": round(time.time() - started, 1)}
        for label, row in rows.items():
            if "failed" in row or label == "original":
                continue
            path = Path(row["path"])
            try:
                row.update(ms_per_face(path, check[key]))
                row.update(closeness(reference, outputs(path, check[key]), metric))
                row["bytes"] = path.stat().st_size
            except Exception as exc:  # e.g. an op with no CPU kernel for this type
                row["failed"] = str(exc)[:200]
            print(f"  {key} {label}: {json.dumps({k: v for k, v in row.items() if k != 'path'})}", flush=True)
        report["networks"][key] = {"file": filename, "rows": rows, "choice": choose(rows)}
    return report


# The form written. Measured on this CPU (AVX-512 VNNI; card.md of each variant has the table): QDQ and QOperator,
# per channel or per tensor, run within noise of each other on the shared machine once ONNX Runtime has fused the
# QDQ graph, per-channel weights stay closer to the original, and QOperator's QLinearMatMul fails on per-channel
# weights (agegender_faceplane). A timing on a busy machine must not pick the form, so it is fixed.
FORM = "int8_qdq_per_channel"


def choose(rows: dict[str, dict[str, Any]]) -> str:
    """FORM where it runs; else the quickest int8 form that does (batch 1 + batch 16)."""
    int8 = {k: r for k, r in rows.items() if k.startswith("int8") and "failed" not in r}
    if FORM in int8:
        return FORM
    return min(int8, key=lambda k: int8[k]["ms_per_face_batch_1"] + int8[k]["ms_per_face_batch_16"])


def variant_config(original: Path, name: str, suffix: str) -> str:
    """The original's config.toml ([crop], [batching], [params], [refine] as they are), renamed, version suffixed."""
    text = original.read_text()
    text = re.sub(r'^name = ".*"$', f'name = "{name}"', text, count=1, flags=re.M)
    text = re.sub(r'^version = "(.*)"$', rf'version = "\1-{suffix}"', text, count=1, flags=re.M)
    header = (f"# Made by `python -m recipes.quantize {original.parent.name}` from model-repo/{original.parent.name}"
              f"/ ({suffix}); card.md says how and what it measured.\n")  # fmt: skip
    return header + text


def write_variant(name: str, report: dict[str, Any], data: Path, count: int) -> Path:
    source = MODEL_REPO / name
    out_name = f"{name}_int8"
    out = MODEL_REPO / out_name
    out.mkdir(exist_ok=True)
    model = load_model(MODEL_REPO, name)
    files = {}
    for key, net in report["networks"].items():
        chosen = net["rows"][net["choice"]]
        target = out / net["file"]
        shutil.copyfile(chosen["path"], target)
        rows = {label: {k: v for k, v in r.items() if k != "path"} for label, r in net["rows"].items()}
        files[key] = {"file": net["file"], "form": net["choice"], "sha256": sha256(target),
                      "original_sha256": sha256(source / net["file"]), "rows": rows}  # fmt: skip
    if model.config.refine is not None:  # the embedder's own alignment step is a file of the folder: it travels
        shutil.copyfile(source / model.config.refine.predictor, out / model.config.refine.predictor)
    (out / "config.toml").write_text(variant_config(source / "config.toml", out_name, "int8"))
    provenance = {
        "original": name,
        "made": time.strftime("%Y-%m-%d"),
        "onnxruntime": ort.__version__,
        "onnx": onnx.__version__,
        "calibration": f"{count} faces of the train split in {data} ({FAMILIES[family_of(name)].images.__name__}), "
        f"seed 0, cut as the service path cuts them; check faces: another {count}, seed 1",
        "method": "onnxruntime.quantization.quantize_static, MinMax calibration, activations uint8 (asymmetric), "
        f"weights int8 (symmetric); ops quantised: {', '.join(OPS)}",
        "files": files,
    }
    (out / "quantize.json").write_text(json.dumps(provenance, indent=2) + "\n")
    write_card(out_name)
    return out


def licence_rows(card: str) -> list[str]:
    return [line for line in card.splitlines() if line.lower().startswith(("| licence, code", "| licence, weights"))]


def eval_figures(name: str) -> list[str]:
    """What `make eval --variant` measured for this folder beside the original (EVAL.json), as card lines."""
    saved = MODEL_REPO / "EVAL.json"
    if not saved.exists():
        return []
    from recipes.evaluate import variant_rows  # evaluate imports the whole stack

    rows = variant_rows(json.loads(saved.read_text()), only=name)
    if not rows:
        return []
    lines = ["| task | figure | original | this variant | change |", "|---|---|---|---|---|"]
    lines += [f"| {r['task']} | {r['figure']} | {r['original']} | {r['variant']} | {r['change']} |" for r in rows]
    return lines


def write_card(out_name: str) -> None:
    out = MODEL_REPO / out_name
    q = json.loads((out / "quantize.json").read_text())
    name = q["original"]
    lines = [
        f"# {out_name} — `{name}` quantised to int8 for the CPU (made by `recipes.quantize`)",
        "",
        f"**What it is.** `{name}`'s networks after ONNX Runtime static quantisation: the same graph, crop, labels "
        "and [params] (config.toml is the original's, renamed, version suffixed `-int8`), int8 weights and uint8 "
        "activations where the compute is. Not trained: every weight comes from the original. Its [params] are the "
        "original's too, so a threshold or calibration in them was made on the original's outputs.",
        "",
        "| | |",
        "|---|---|",
        *licence_rows((MODEL_REPO / name / "card.md").read_text()),
        f"| provenance | made {q['made']} by `python -m recipes.quantize {name}` (onnxruntime {q['onnxruntime']}, "
        f"onnx {q['onnx']}) from `model-repo/{name}/` |",
        f"| calibration | {q['calibration']} |",
        f"| method | {q['method']}; the form {FORM} (every form measured: Speed, below) |",
    ]
    for key, f in q["files"].items():
        rows = f["rows"]
        lines.append(
            f"| files | `{f['file']}` ({key}) {rows[f['form']]['bytes'] / 1e6:.1f} MB, sha256 `{f['sha256']}`, "
            f"form {f['form']}; from the original's `{f['file']}` {rows['original']['bytes'] / 1e6:.1f} MB, "
            f"sha256 `{f['original_sha256']}` |"
        )
    config = read_config(out)
    if config.refine is not None:
        digest = sha256(out / config.refine.predictor)
        lines.append(f"| files | `{config.refine.predictor}` ([refine]) copied unchanged from `{name}/`, sha256 "
                     f"`{digest}` |")  # fmt: skip
    lines += ["", "## Accuracy we measured", ""]
    figures = eval_figures(out_name)
    if figures:
        lines += [f"Through the service path beside `{name}`, on the same dev data and detector "
                  "(`python -m recipes.evaluate --variant`; EVAL.md's Variants table):", "", *figures]  # fmt: skip
    else:
        lines += ["Not yet through the service path: `python -m recipes.evaluate --variant --tasks <task>` with "
                  "the service's model setting naming this folder, then `python -m recipes.quantize --card` "
                  "writes the figures here."]  # fmt: skip
    lines += ["", "## Speed", "", "Every form measured, in-process, ONNX Runtime with one thread, ms per face, best "
              "of 10 on the shared 2-core development machine, and how close each stays to the original on the "
              "check faces (the network's outputs on the same tensors):", ""]  # fmt: skip
    for key, f in q["files"].items():
        lines += [f"`{f['file']}` ({key}), chosen: **{f['form']}**", "",
                  "| form | batch 1 | batch 16 | MB | beside the original |", "|---|---|---|---|---|"]  # fmt: skip
        for label, r in f["rows"].items():
            if "failed" in r:
                lines.append(f"| {label} | failed: {r['failed'][:120]} | | | |")
                continue
            close = "; ".join(f"{k} {v:.4f}" for k, v in r.items() if ":" in k) or "itself"
            lines.append(f"| {label} | {r['ms_per_face_batch_1']:.2f} | {r['ms_per_face_batch_16']:.2f} | "
                         f"{r.get('bytes', 0) / 1e6:.1f} | {close} |")  # fmt: skip
        lines.append("")
    lines += ["ort_extended / ort_all: the original as ONNX Runtime saves it after its own optimisation at that "
              "level; the service's session applies ORT_ENABLE_ALL at every start, so a saved graph saves start-up "
              "time only. fp16 (where tried): the graph in float16 with float32 inputs and outputs."]  # fmt: skip
    (out / "card.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="model folders of model-repo/ (with --card: the variants')")
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--faces", type=int, default=300, help="calibration faces (and as many check faces)")
    parser.add_argument("--fp16", action="store_true", help="also measure an fp16 graph")
    parser.add_argument("--card", action="store_true", help="only write the variants' card.md again")
    args = parser.parse_args()
    for name in args.models:
        if args.card:
            write_card(name)
            continue
        report = candidates(name, args.data, args.faces, args.fp16)
        out = write_variant(name, report, args.data, args.faces)
        shutil.rmtree(report["work"], ignore_errors=True)
        print(f"wrote {out}", flush=True)


if __name__ == "__main__":
    main()
