"""`make eval`: every model through the service path on the developer data, written to model-repo/EVAL.md.

    make eval [DATA=../shared/datasets] [EVAL_LIMIT=200] [DLIB_MODELS=dir]   (`python -m recipes.evaluate --help`)

The real services are started on free ports and spoken to over gRPC exactly as the gateway does: the image's
bytes go to the detector with the crop spec the analysis service asked for, the largest face's crop goes to the
service. Where the detector finds no face, the image is sent again with skip_detection (the whole image as the
face, what a client would do with a pre-cropped face); how often that happened is reported.

Verification is also run through dlib's own pipeline on the same pair lists when dlib (dlib-bin, a dev dependency)
and its model files are there (`--dlib-models`, the folder holding shape_predictor_5_face_landmarks.dat; `make eval`
passes DLIB_MODELS): HOG detector, 5-point shape predictor, get_face_chip, then the same ONNX network in-process. Both
are reported at the service's threshold and at each list's own best, on all pairs and on the pairs where dlib's
detector finds both faces.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import platform
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from faceplane.v1 import analysis_pb2_grpc, common_pb2, detector_pb2, detector_pb2_grpc, embedder_pb2, embedder_pb2_grpc
from PIL import Image

from deploy.local.stack import Stack, free_port
from recipes.detector_eval import evaluate as detector_recall
from recipes.detector_eval import load_wider
from recipes.embedder_eval import (
    IMAGE_SUFFIXES,
    SHAPE_5,
    DlibPipeline,
    best_threshold,
    load_pairs,
    network,
    rates,
    similarity,
)
from recipes.splits import CELEBA_TRAIN_LAST_ID, UTKFACE_TEST_PERCENT, mask_is_test, utkface_is_test
from services.embedder.model import EmbeddingModel
from services.runtime.modelrepo import load_model, read_config

REPO = Path(__file__).resolve().parents[2]

FER_LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
ATTRIBUTES = ["smiling", "eyeglasses", "wearing_hat", "bangs", "mustache", "no_beard", "blond_hair", "black_hair",
              "pale_skin", "blurry"]  # fmt: skip
SERVICES = ["detector", "embedder", "emotion", "agegender", "attributes"]
IDENTIFICATION = REPO / "model-repo" / "IDENTIFICATION.json"  # written by identification_eval.py
QUALITY = REPO / "model-repo" / "QUALITY.json"  # written by quality_eval.py


def encode_png(image: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, "PNG")
    return out.getvalue()


class ServicePath:
    """gRPC clients of the running services; crops cut by the detector for each service's own spec."""

    def __init__(self, ports: dict[str, int]) -> None:
        self.channels = {name: grpc.insecure_channel(f"127.0.0.1:{ports[name]}") for name in SERVICES}
        self.detector = detector_pb2_grpc.DetectorStub(self.channels["detector"])
        self.stubs = {
            "embedder": embedder_pb2_grpc.EmbedderStub(self.channels["embedder"]),
            "emotion": analysis_pb2_grpc.EmotionStub(self.channels["emotion"]),
            "agegender": analysis_pb2_grpc.AgeGenderStub(self.channels["agegender"]),
            "attributes": analysis_pb2_grpc.AttributesStub(self.channels["attributes"]),
        }
        infos = {n: s.Describe(common_pb2.DescribeRequest()) for n, s in self.stubs.items()}
        self.specs = {n: info.crops[0] for n, info in infos.items()}
        self.models = {n: "+".join(m.name for m in info.models) for n, info in infos.items()}
        self.models["detector"] = "+".join(m.name for m in self.detector.Describe(common_pb2.DescribeRequest()).models)
        self.pool = ThreadPoolExecutor(2)

    def crop(self, service: str, data: bytes, skip_detection: bool = False) -> tuple[common_pb2.FaceCrop, bool]:
        """The largest face's crop for `service`, and whether the detector found it (else: the whole image)."""
        spec = self.specs[service]
        request = detector_pb2.DetectRequest(image=common_pb2.Image(data=data), crops=[spec], max_faces=1)
        if not skip_detection:
            reply = self.detector.Detect(request, timeout=60)
            if reply.faces:
                return reply.faces[0].crops[0], True
        request.skip_detection = True
        return self.detector.Detect(request, timeout=60).faces[0].crops[0], False

    def run(
        self, service: str, rpc: str, images: Sequence[bytes], batch: int = 32, skip_detection: bool = False
    ) -> tuple[list[Any], float]:
        """Per image, the service's answer for its largest face; and the share of images where a face was found."""
        crops = list(self.pool.map(lambda data: self.crop(service, data, skip_detection), images))
        answers: list[Any] = []
        for i in range(0, len(crops), batch):
            request = common_pb2.CropsRequest(crops=[c for c, _ in crops[i : i + batch]])
            reply = getattr(self.stubs[service], rpc)(request, timeout=120)
            answers.extend(reply.embeddings if service == "embedder" else reply.results)
        return answers, float(np.mean([found for _, found in crops])) if crops else 0.0

    def close(self) -> None:
        for channel in self.channels.values():
            channel.close()


def client_bytes(path: Path) -> bytes:
    """The file as a client would send it: the service takes photo formats only, so AT&T's PGM goes as PNG."""
    return encode_png(np.asarray(Image.open(path).convert("RGB"))) if path.suffix == ".pgm" else path.read_bytes()


def limited(items: list[Any], limit: int | None) -> list[Any]:
    if limit is None or len(items) <= limit:
        return items
    keep = np.random.default_rng(0).choice(len(items), limit, replace=False)
    return [items[i] for i in sorted(keep)]


def eval_emotion(path: ServicePath, data_dir: Path, limit: int | None) -> dict[str, Any]:
    """Two ways in: the 48 px faces as the pre-cropped faces they are (skip_detection), and upscaled ×4 (bicubic,
    since 48 px is below the detector's smallest face) through detection and alignment."""
    with np.load(data_dir / "fer2013" / "fer2013_trainval.npz") as fer:  # each fer[...] re-reads the zip: once
        usage, labels, pixels = fer["usage"], fer["labels"], fer["images"]
    idx = limited(list(np.flatnonzero(usage == "val")), limit)
    truth = [FER_LABELS[int(labels[i])] for i in idx]
    faces = [Image.fromarray(pixels[i]).convert("RGB") for i in idx]

    def accuracy(answers: list[Any]) -> float:
        return float(np.mean([a.label == t for a, t in zip(answers, truth, strict=True)]))

    cropped, _ = path.run("emotion", "Analyze", [encode_png(np.asarray(f)) for f in faces], skip_detection=True)
    upscaled = [encode_png(np.asarray(f.resize((192, 192), Image.BICUBIC))) for f in faces]
    detected, found = path.run("emotion", "Analyze", upscaled)
    return {"images": len(idx), "accuracy_precropped": accuracy(cropped), "accuracy_detected": accuracy(detected),
            "face_found": found}  # fmt: skip


def eval_agegender(path: ServicePath, data_dir: Path, limit: int | None) -> dict[str, Any]:
    root = data_dir / "utkface"
    rows = [line.split(",") for line in (root / "labels.csv").read_text().splitlines()[1:]]
    rows = limited([r for r in rows if utkface_is_test(r[0])], limit)
    images = [(root / "images" / r[0] if (root / "images").exists() else root / r[0]).read_bytes() for r in rows]
    answers, found = path.run("agegender", "Analyze", images)
    ages = np.array([float(r[1]) for r in rows])
    genders = ["female" if r[2].strip() == "1" else "male" for r in rows]
    return {
        "images": len(rows),
        "face_found": found,
        "age_mae": float(np.mean(np.abs(np.array([a.age for a in answers]) - ages))),
        "gender_accuracy": float(np.mean([a.gender == g for a, g in zip(answers, genders, strict=True)])),
    }


def eval_mask(path: ServicePath, data_dir: Path, limit: int | None) -> dict[str, Any]:
    """Both sets, test split only (model-repo/recipes/splits.py: our mask model trains on the rest)."""
    out = {}
    for source in ("prajnasb", "chandrikadeb7"):
        files = [(p, label) for label, folder in (("mask", "with_mask"), ("no_mask", "without_mask"))
                 for p in sorted((data_dir / "mask" / source / folder).iterdir())
                 if p.is_file() and mask_is_test(source, p.name)]  # fmt: skip
        files = limited(files, limit)
        answers, found = path.run("attributes", "Analyze", [p.read_bytes() for p, _ in files])
        right = [a.mask == label for a, (_, label) in zip(answers, files, strict=True)]
        masked = [ok for ok, (_, label) in zip(right, files, strict=True) if label == "mask"]
        out[source] = {"images": len(files), "face_found": found, "accuracy": float(np.mean(right)),
                       "mask_recall": float(np.mean(masked))}  # fmt: skip
    return out


def eval_attributes(path: ServicePath, data_dir: Path, limit: int | None) -> dict[str, Any]:
    lines = (data_dir / "celeba" / "list_attr_celeba.txt").read_text().splitlines()
    header = [h.lower() for h in lines[1].split()]
    rows = [line.split() for line in lines[2:] if int(line.split()[0].split(".")[0]) > CELEBA_TRAIN_LAST_ID]
    rows = limited(rows, limit)
    images = [(data_dir / "celeba" / "images" / r[0]).read_bytes() for r in rows]
    answers, found = path.run("attributes", "Analyze", images)
    per = {}
    for name in ATTRIBUTES:
        col = header.index(name) + 1
        truth = np.array([r[col] == "1" for r in rows])
        guess = np.array([a.attributes[name] >= 0.5 for a in answers])
        per[name] = float((truth == guess).mean())
    return {
        "images": len(rows),
        "face_found": found,
        "per_attribute": per,
        "mean_accuracy": float(np.mean(list(per.values()))),
    }


def eval_verification(
    path: ServicePath, data_dir: Path, limit: int | None, dlib_models: Path | None = None
) -> dict[str, Any]:
    lists = {name: limited(pairs, limit) for name, pairs in load_pairs(data_dir).items()}
    files = sorted({p for pairs in lists.values() for a, b, _ in pairs for p in (a, b)})
    answers, found = path.run("embedder", "Embed", [client_bytes(f) for f in files])
    vectors = {f: np.array(a.values) for f, a in zip(files, answers, strict=True)}

    def scored(pairs: Iterable[tuple[Path, Path, bool]]) -> tuple[np.ndarray, np.ndarray]:
        pairs = list(pairs)
        sims = np.array([similarity(vectors[a], vectors[b]) for a, b, _ in pairs])
        return sims, np.array([s for _, _, s in pairs])

    all_sims, all_same = scored(p for pairs in lists.values() for p in pairs)
    threshold = float(read_config(REPO / "model-repo" / "dlib_resnet").params["threshold"])  # what the service uses
    calibrated = best_threshold(all_sims, all_same)
    per_list = {}
    for name, pairs in lists.items():
        sims, same = scored(pairs)
        own = best_threshold(sims, same)
        per_list[name] = {"pairs": len(pairs), "at_default": rates(sims, same, threshold),
                          "own_best_threshold": own, "at_own_best": rates(sims, same, own)}  # fmt: skip
    total = {"pairs": len(all_sims), **rates(all_sims, all_same, threshold)}
    best = {"threshold": calibrated, **rates(all_sims, all_same, calibrated)}
    out = {"images": len(files), "face_found": found, "threshold": threshold, "all_pairs": total,
           "calibrated": best, "lists": per_list}  # fmt: skip
    out["dlib"] = dlib_reference(lists, files, vectors, threshold, dlib_models)
    return out


def dlib_reference(
    lists: dict[str, list[tuple[Path, Path, bool]]],
    files: list[Path],
    ours: dict[Path, np.ndarray],
    threshold: float,
    models: Path | None,
) -> dict[str, Any]:
    """dlib's own pipeline on the same pairs (in-process, same network), beside ours: at `threshold` and at each
    list's own best, on all pairs and on those where dlib's detector finds both faces. {"skipped": why} when dlib or
    its shape predictor is not there."""
    if models is None:
        return {"skipped": "no --dlib-models given"}
    if not (models / SHAPE_5).exists():
        return {"skipped": f"{models / SHAPE_5} not found; make dlib-models fetches it"}
    try:
        import dlib  # noqa: F401 - a dev dependency
    except ImportError:
        return {"skipped": "dlib is not installed; it is a dev dependency (dlib-bin), make install"}
    reference = DlibPipeline(network(load_model(REPO / "model-repo", "dlib_resnet")), models)
    theirs = {f: reference(f) for f in files}

    def rows(pairs: list[tuple[Path, Path, bool]], vecs: dict[Path, np.ndarray | None]) -> dict[str, Any]:
        sims = np.array([similarity(vecs[a], vecs[b]) for a, b, _ in pairs])
        same = np.array([s for _, _, s in pairs])
        own = best_threshold(sims, same)
        return {"pairs": len(pairs), "at_default": rates(sims, same, threshold), "own_best_threshold": own,
                "at_own_best": rates(sims, same, own)}  # fmt: skip

    out: dict[str, Any] = {"images_without_face": sum(v is None for v in theirs.values()), "lists": {}}
    for name, pairs in lists.items():
        both = [(a, b, s) for a, b, s in pairs if theirs[a] is not None and theirs[b] is not None]
        out["lists"][name] = {
            **rows(pairs, theirs),
            "both_found": {"ours": rows(both, ours), "dlib": rows(both, theirs)},
        }
    every = [p for pairs in lists.values() for p in pairs]
    out["all_pairs"] = rows(every, theirs)
    return out


def identify_top1(stub: Any, collection: str, crops: list[Any], threshold: float | None) -> list[str]:
    """The best subject per crop ("" for no match); threshold None: the service's default."""
    out = []
    for i in range(0, len(crops), 128):  # a call takes at most 256 crops
        request = embedder_pb2.IdentifyRequest(collection=collection, crops=crops[i : i + 128], top_k=1)
        if threshold is not None:
            request.threshold = threshold
        out += [r.matches[0].subject_id if r.matches else "" for r in stub.Identify(request, timeout=120).results]
    return out


def eval_identification(path: ServicePath, data_dir: Path, limit: int | None) -> dict[str, Any]:
    """1:N through the gallery: per person the first photo (file order) is enrolled, every other photo is
    identified among all enrolled people. Top-1 accuracy with no threshold (closed set), and at the default
    threshold how often the right person, a wrong person or nobody came back."""
    stub = path.stubs["embedder"]
    out = {}
    for name in ("faceapi_js_bbt", "att_faces"):
        root = data_dir / "verification" / name
        folders = [p for p in sorted(root.iterdir()) if p.is_dir()]
        people = {p.name: sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES) for p in folders}
        collection = f"eval-{name.replace('_', '-')}-{os.getpid()}"
        for person, files in people.items():
            stub.CreateSubject(embedder_pb2.CreateSubjectRequest(collection=collection, subject_id=person), timeout=30)
            crop, _ = path.crop("embedder", client_bytes(files[0]))
            stub.AddFaces(
                embedder_pb2.AddFacesRequest(collection=collection, subject_id=person, crops=[crop]), timeout=30
            )
        queries = limited([(person, f) for person, files in people.items() for f in files[1:]], limit)
        crops = list(path.pool.map(lambda q: path.crop("embedder", client_bytes(q[1]))[0], queries))

        truth = [person for person, _ in queries]
        closed = identify_top1(stub, collection, crops, -1.0)
        at_default = identify_top1(stub, collection, crops, None)
        out[name] = {
            "people": len(people),
            "queries": len(queries),
            "top1_accuracy": float(np.mean([g == t for g, t in zip(closed, truth, strict=True)])),
            "at_default_right": float(np.mean([g == t for g, t in zip(at_default, truth, strict=True)])),
            "at_default_wrong": float(np.mean([g not in ("", t) for g, t in zip(at_default, truth, strict=True)])),
            "at_default_none": float(np.mean([g == "" for g in at_default])),
        }
        for person in people:
            stub.DeleteSubject(embedder_pb2.SubjectRef(collection=collection, subject_id=person), timeout=30)
    return out


def eval_detector(path: ServicePath, data_dir: Path, limit: int | None) -> dict[str, Any]:
    samples = limited(load_wider(data_dir), limit)

    def detect(image: np.ndarray) -> np.ndarray:
        reply = path.detector.Detect(detector_pb2.DetectRequest(image=common_pb2.Image(data=encode_png(image))))
        return np.array(
            [[f.box.x, f.box.y, f.box.x + f.box.width, f.box.y + f.box.height] for f in reply.faces]
        ).reshape(-1, 4)

    return detector_recall(detect, samples)


def refine_speed(name: str) -> dict[str, float]:
    """ms per face of the embedder's own alignment step before its network ([refine]: numpy), batch 1 and 16."""
    refiner = EmbeddingModel(load_model(REPO / "model-repo", name)).refiner
    if refiner is None:
        return {}
    out = {}
    for batch in (1, 16):
        crops = np.random.default_rng(0).integers(0, 255, (batch, 150, 150, 3), dtype=np.uint8)
        refiner(crops)
        start = time.perf_counter()
        for _ in range(5):
            refiner(crops)
        out[f"ms_per_face_batch_{batch}"] = 1000 * (time.perf_counter() - start) / 5 / batch
    return out


def model_speed(name: str) -> dict[str, float]:
    """ms per face in-process (one ONNX Runtime thread), batch 1 and 16, every file of the model."""
    model = load_model(REPO / "model-repo", name)
    out: dict[str, float] = {}
    if not model.backends:  # no network (quality_faceplane: numpy only); its card gives its speed
        return out
    for batch in (1, 16):
        total = 0.0
        for backend in model.backends.values():
            inputs = {}
            for arg in backend._session.get_inputs():  # shapes are only known to the session
                shape = [batch if not isinstance(d, int) else d for d in arg.shape]
                if name == "mtcnn":
                    shape = [batch, 3, *(d if isinstance(d, int) else 48 for d in arg.shape[2:])]
                elif name == "yunet":  # sides must be multiples of 32: the benchmark photo's 640×480
                    shape = [batch, 3, 480, 640]
                dtype = np.uint8 if "uint8" in arg.type else np.float32
                inputs[arg.name] = np.random.default_rng(0).integers(0, 255, shape).astype(dtype)
            backend.run(inputs)
            start = time.perf_counter()
            for _ in range(5):
                backend.run(inputs)
            total += (time.perf_counter() - start) / 5
        out[f"ms_per_face_batch_{batch}"] = 1000 * total / batch
    return out


TASKS: dict[str, Callable[[ServicePath, Path, int | None], dict[str, Any]]] = {
    "emotion": eval_emotion,
    "agegender": eval_agegender,
    "mask": eval_mask,
    "attributes": eval_attributes,
    "verification": eval_verification,
    "identification": eval_identification,
    "detector": eval_detector,
}

# The service whose model a task measures (every task but the detector's also goes through the detector).
TASK_SERVICE = {
    "emotion": "emotion", "agegender": "agegender", "attributes": "attributes", "mask": "attributes",
    "verification": "embedder", "identification": "embedder", "detector": "detector",
}  # fmt: skip


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def table_rows(r: dict[str, Any]) -> list[tuple[str, str, str, str, str, str]]:
    """(task, data, metric, ours, floor of issue 3, reference) per line of the main table."""
    rows = []
    if "emotion" in r:
        e = r["emotion"]
        data = f"FER-2013 val (PublicTest), {e['images']} faces sent as pre-cropped faces (skip_detection)"
        rows.append(("emotion", data, "accuracy", pct(e["accuracy_precropped"]), "65%", "mini-Xception 66%; CNNs ~73%"))
        data = f"same faces upscaled ×4, through detection and alignment (face found {pct(e['face_found'])})"
        rows.append(("emotion", data, "accuracy", pct(e["accuracy_detected"]), "65%", ""))
    if "agegender" in r:
        a = r["agegender"]
        data = (
            f"UTKFace, our fixed {UTKFACE_TEST_PERCENT}% split, {a['images']} images, face found {pct(a['face_found'])}"
        )
        rows.append(("age", data, "MAE, years", f"{a['age_mae']:.2f}", "≤ 7", "~6 student systems; 3.8 recent models"))
        rows.append(("gender", "same", "accuracy", pct(a["gender_accuracy"]), "90%", "~90% students; 93.5% recent"))
    for source, m in r.get("mask", {}).items():
        if not isinstance(m, dict):  # its model and detector
            continue
        data = f"{source} test split, {m['images']} images, face found {pct(m['face_found'])}"
        ours = f"{pct(m['accuracy'])} (masks found: {pct(m['mask_recall'])})"
        rows.append(("mask", data, "accuracy", ours, "95%", "97% student systems"))
    if "attributes" in r:
        a = r["attributes"]
        data = f"CelebA 006801–008000 (never trained on), {a['images']} images, face found {pct(a['face_found'])}"
        rows.append(("attributes", data, "mean accuracy, 10 attributes", pct(a["mean_accuracy"]), "87%", "VGG16 89.8%"))
    if "verification" in r:
        v = r["verification"]
        total = v["all_pairs"]
        ours = f"{pct(total['accuracy'])} (FAR {pct(total['far'])}, FRR {pct(total['frr'])})"
        metric = f"accuracy at the default threshold {v['threshold']:.3f}"
        rows.append(("verification", f"all lists, {total['pairs']} pairs", metric, ours, "97%", "dlib 99.38% LFW"))
        best = v["calibrated"]
        ours = f"{pct(best['accuracy'])} (FAR {pct(best['far'])}, FRR {pct(best['frr'])})"
        metric = f"accuracy at the best threshold on these lists, {best['threshold']:.3f}"
        rows.append(("verification", "same", metric, ours, "", "how the default was calibrated"))
        for name, lst in v["lists"].items():
            d = lst["at_default"]
            ours = f"{pct(d['accuracy'])} (FAR {pct(d['far'])}, FRR {pct(d['frr'])})"
            own = f"{pct(lst['at_own_best']['accuracy'])} at its own best {lst['own_best_threshold']:.3f}"
            rows.append(("verification", f"{name}, {lst['pairs']} pairs", "accuracy at the default threshold", ours,
                         "97%", own))  # fmt: skip
    for name, ident in r.get("identification", {}).items():
        if not isinstance(ident, dict):  # its model and detector
            continue
        data = f"{name}: {ident['people']} people, first photo enrolled, {ident['queries']} others identified"
        ours = (f"{pct(ident['top1_accuracy'])}; at the default threshold right {pct(ident['at_default_right'])}, "
                f"wrong {pct(ident['at_default_wrong'])}, no match {pct(ident['at_default_none'])}")  # fmt: skip
        rows.append(("identification", data, "top-1 accuracy (1:N, Redis gallery)", ours, "", ""))
    if "detector" in r:
        d = r["detector"]
        data = f"WIDER FACE val subset, {d['images']} photos, {d['faces']} faces ≥ 32 px"
        at_64 = f"≥ 64 px {pct(d['recall_64'])}, " if "recall_64" in d else ""
        on_face = f"{pct(d['on_face'])} of {d['boxes']} boxes on a face, " if "on_face" in d else ""
        ours = (
            f"{pct(d['recall'])} ({at_64}clean faces {pct(d['recall_clean'])}), {on_face}{d['false_positives']} false +"
        )
        card = f"see model-repo/{d.get('model', 'mtcnn')}/card.md"
        rows.append(("detection", data, "recall at IoU 0.5", ours, "85% (issue 2)", card))
    return rows


def _models(result: dict[str, Any]) -> str:
    """The model a result measured, and the detector that cut its crops (when not the detector's own task)."""
    model = result.get("model", "")
    detector = result.get("detector")
    return f"{model} on {detector}" if detector and detector != model else model


def dlib_table(verification: dict[str, Any]) -> list[str]:
    """Our verification beside dlib's own pipeline's on the same pairs (EVAL.md lines)."""
    dlib = verification.get("dlib")
    if not dlib:
        return []
    if "skipped" in dlib:
        return ["", f"Verification beside dlib's own pipeline: not run ({dlib['skipped']})."]
    t = verification["threshold"]

    def at(r: dict[str, Any]) -> str:
        return (
            f"{pct(r['at_default']['accuracy'])} / {pct(r['at_own_best']['accuracy'])} ({r['own_best_threshold']:.3f})"
        )

    lines = [
        "",
        f"Verification beside dlib's own pipeline (HOG detector, 5-point shape predictor, get_face_chip 150 px / 0.25, "
        f"the same network, in-process) on the same pairs: accuracy at the service's threshold {t:.3f} / at the "
        f"list's own best threshold (that threshold). dlib's detector finds no face in {dlib['images_without_face']} "
        f"of the {verification['images']} photos (their pairs count as different); the last two columns keep only "
        "the pairs where it finds both faces.",
        "",
        "| list | pairs | ours | dlib's own | pairs, dlib finds both | ours there | dlib's own there |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, theirs in dlib["lists"].items():
        ours, both = verification["lists"][name], theirs["both_found"]
        ours_row = {"at_default": ours["at_default"], "at_own_best": ours["at_own_best"],
                    "own_best_threshold": ours["own_best_threshold"]}  # fmt: skip
        lines.append(f"| {name} | {theirs['pairs']} | {at(ours_row)} | {at(theirs)} | {both['dlib']['pairs']} | "
                     f"{at(both['ours'])} | {at(both['dlib'])} |")  # fmt: skip
    return lines


def open_set_table(figures: Path) -> list[str]:
    """The open-set 1:N figures of `make eval-identification` (identification_eval.py's JSON), as EVAL.md lines."""
    if not figures.exists():
        return ["", f"Open-set identification (1:N): not run (no {figures.name}; `make eval-identification`)."]
    r = json.loads(figures.read_text())
    lines = [
        "",
        f"Open-set identification (1:N, as NIST FRVT measures it; `make eval-identification`, {r.get('date', '')}): "
        f"{r['people']} dev people in two folds, one photo of each enrolled, the other photos searched (mated); "
        f"non-mated searches from the other fold's people and {r['non_mated_utkface']:,} UTKFace faces never "
        "enrolled; UTKFace/CelebA faces of unknown identity as distractors; exact search. FNIR: mated searches "
        "that miss their subject; FPIR: non-mated searches that get any match.",
        "",
        "| distractors | rank-1 | FNIR at FPIR 1% | FNIR at FPIR 0.1% | fixed threshold: FPIR / FNIR "
        "| FPIR target 1%: threshold, FPIR / FNIR |",
        "|---|---|---|---|---|---|",
    ]
    for size, row in r["galleries"].items():
        fixed = next(d for label, d in row["decisions"].items() if label.startswith("fixed"))
        target = row["decisions"]["FPIR target 0.01"]
        lines.append(
            f"| {int(size):,} | {pct(row['rank1'])} | {pct(row['at_fpir']['0.01']['fnir'])} | "
            f"{pct(row['at_fpir']['0.001']['fnir'])} | {fixed['threshold']:.3f}: {pct(fixed['fpir'])} / "
            f"{pct(fixed['fnir'])} | {target['threshold']:.3f}, {pct(target['fpir'])} / {pct(target['fnir'])} |"
        )
    return lines


def pct2(x: float) -> str:
    return f"{100 * x:.2f}%"


def quality_table(figures: Path) -> list[str]:
    """The error-versus-discard curve of the face-quality score (quality_eval.py's JSON), as EVAL.md lines."""
    if not figures.exists():
        return ["", f"Error versus discard (face quality): not run (no {figures.name}; `make eval-quality`)."]
    r = json.loads(figures.read_text())
    curves = r["curves"]
    lines = [
        "",
        f"Error versus discard (face quality, {r['quality_model']}; `make eval-quality`, {r['date']}): the "
        f"{r['pairs']:,} verification pairs above ({r['genuine']:,} genuine), the lowest-quality pairs (the lower "
        f"of the two faces' quality) discarded first; FNMR and FMR at the fixed threshold {r['threshold']:.3f} on "
        f"the rest. Sharpness alone and random discards (mean of {r['random_orders']} orders) beside the score.",
        "",
        "| discarded | pairs kept | FNMR, score (false non-matches) | FMR, score | FNMR, sharpness alone "
        "| FNMR, random discard |",
        "|---|---|---|---|---|---|",
    ]
    for score, sharp, rand in zip(curves["score"], curves["sharpness"], curves["random"], strict=True):
        lines.append(
            f"| {100 * score['discard']:.0f}% | {score['pairs']:,} | {pct2(score['fnmr'])} "
            f"({score['false_non_matches']}) | {pct2(score['fmr'])} | {pct2(sharp['fnmr'])} | {pct2(rand['fnmr'])} |"
        )
    return lines


# The dev figures a variant is judged by, per task: (label, the figure from a task's result, "pct" or "years").
VARIANT_FIGURES: dict[str, list[tuple[str, Callable[[dict[str, Any]], float], str]]] = {
    "emotion": [("accuracy, pre-cropped", lambda r: r["accuracy_precropped"], "pct"),
                ("accuracy, through detection", lambda r: r["accuracy_detected"], "pct")],
    "agegender": [("gender accuracy", lambda r: r["gender_accuracy"], "pct"),
                  ("age MAE", lambda r: r["age_mae"], "years")],
    "mask": [("chandrikadeb7 accuracy", lambda r: r["chandrikadeb7"]["accuracy"], "pct"),
             ("prajnasb accuracy", lambda r: r["prajnasb"]["accuracy"], "pct")],
    "attributes": [("mean accuracy, 10 attributes", lambda r: r["mean_accuracy"], "pct")],
    "verification": [("accuracy at the default threshold, all pairs", lambda r: r["all_pairs"]["accuracy"], "pct"),
                     ("accuracy at the best threshold", lambda r: r["calibrated"]["accuracy"], "pct")],
    "identification": [("att_faces top-1", lambda r: r["att_faces"]["top1_accuracy"], "pct"),
                       ("faceapi_js_bbt right at the default threshold",
                        lambda r: r["faceapi_js_bbt"]["at_default_right"], "pct")],
}  # fmt: skip


def variant_rows(saved: dict[str, Any], only: str | None = None) -> list[dict[str, str]]:
    """Each variant measured with --variant beside the default it was made from (EVAL.json's `variants` against its
    main results): per dev figure, both values and the change, and the changed model's ms per face; `only`: the rows
    of that model folder."""
    results, speed = saved["results"], saved.get("speed", {})
    rows = []
    for task, measured in results.get("variants", {}).items():
        base = results.get(task)
        if not base or "model" not in base:  # measured before results named their model
            continue
        for models, r in measured.items():
            changed = [m for m in models.split("+") if m not in base["model"].split("+")]
            originals = [m for m in base["model"].split("+") if m not in models.split("+")]
            if only is not None and only not in changed:
                continue

            def ms(names: list[str]) -> str:
                found = [speed[n] for n in names if speed.get(n)]
                return " · ".join(f"{sum(s[f'ms_per_face_batch_{b}'] for s in found):.2f}" for b in (1, 16))

            for label, figure, unit in VARIANT_FIGURES.get(task, []):
                was, now = figure(base), figure(r)
                text = pct if unit == "pct" else (lambda x: f"{x:.2f}")
                change = f"{100 * (now - was):+.2f} pts" if unit == "pct" else f"{now - was:+.3f} years"
                rows.append({"task": task, "figure": label, "original_model": "+".join(originals),
                             "variant_model": "+".join(changed), "original": text(was), "variant": text(now),
                             "change": change, "original_ms": ms(originals), "variant_ms": ms(changed)})  # fmt: skip
    return rows


def variants_table(saved: dict[str, Any]) -> list[str]:
    """EVAL.md's Variants table: each variant (`--variant`) beside the default it was made from."""
    rows = variant_rows(saved)
    if not rows:
        return []
    lines = [
        "",
        "Variants (`python -m recipes.evaluate --variant`, e.g. the int8 models of `recipes.quantize`), each beside "
        "the default it was made from, on the same dev data and detector; ms per face at batch 1 · 16 from the speed "
        "table below. Not defaults unless a setting names them:",
        "",
        "| task | figure | original | result | variant | result | change | ms/face original | ms/face variant |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [f"| {r['task']} | {r['figure']} | {r['original_model']} | {r['original']} | {r['variant_model']} | "
              f"{r['variant']} | {r['change']} | {r['original_ms']} | {r['variant_ms']} |" for r in rows]  # fmt: skip
    return lines


def render(results: dict[str, Any], speed: dict[str, dict[str, float]], meta: dict[str, str]) -> str:
    lines = [
        "# Evaluation (generated by `make eval`; do not edit)",
        "",
        f"{meta['date']} · {meta['machine']} · data `{meta['data']}`. Every figure goes through the service path "
        "(detector → aligned crop → service over gRPC), largest face per image; where no face was found, the whole "
        f"image was sent with skip_detection. {meta['limit']}",
        "",
        "| task | data | metric | ours | floor | reference |",
        "|---|---|---|---|---|---|",
        *("| " + " | ".join(row) + " |" for row in table_rows(results)),
    ]
    if results.get("previous"):
        lines += ["", "Previous defaults, as last measured, beside the models that replaced them:", ""]
        lines += ["| task | data | metric | previous model | result | now (model) |", "|---|---|---|---|---|---|"]
        for task, old in results["previous"].items():
            # the same rows, in the same order, for the old and the current result of the task
            for row, now in zip(table_rows({task: old}), table_rows({task: results[task]}), strict=True):
                current = f"{now[3]} ({_models(results[task])})"
                lines.append(f"| {row[0]} | {row[1]} | {row[2]} | {_models(old)} | {row[3]} | {current} |")
    lines += variants_table({"results": results, "speed": speed})
    lines += dlib_table(results.get("verification", {}))
    lines += open_set_table(IDENTIFICATION)
    lines += quality_table(QUALITY)
    if "attributes" in results:
        per = results["attributes"]["per_attribute"]
        lines += ["", "Attributes, accuracy per attribute (CelebA dev):", ""]
        lines += ["| " + " | ".join(ATTRIBUTES) + " |", "|" + "---|" * len(ATTRIBUTES)]
        lines += ["| " + " | ".join(pct(per[a]) for a in ATTRIBUTES) + " |"]
    lines += [
        "",
        "Speed, in-process, ONNX Runtime with one thread, ms per face (mtcnn: all three networks on one 48 px window; "
        "yunet: one 640×480 image; dlib_resnet [refine]: the embedder's alignment step before the network, numpy):",
        "",
    ]
    lines += ["| model | batch 1 | batch 16 |", "|---|---|---|"]
    rows = [(n, s) for n, s in speed.items() if s]
    lines += [f"| {n} | {s['ms_per_face_batch_1']:.2f} | {s['ms_per_face_batch_16']:.2f} |" for n, s in rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--limit", type=int, default=None, help="at most this many images (pairs) per task")
    parser.add_argument("--tasks", nargs="*", default=list(TASKS))
    parser.add_argument("--out", type=Path, default=REPO / "model-repo" / "EVAL.md")
    parser.add_argument(
        "--dlib-models",
        type=Path,
        help="the folder with dlib's shape_predictor_5_face_landmarks.dat: verification "
        "is also run through dlib's own pipeline (needs dlib-bin)",
    )
    parser.add_argument("--render", action="store_true", help="only write EVAL.md again from EVAL.json")
    parser.add_argument(
        "--variant",
        action="store_true",
        help="the services run a variant, not the default (point its setting at it, e.g. "
        "FACEPLANE_EMOTION_MODEL=emotion_faceplane_int8): its results go to EVAL.md's Variants table beside the "
        "default's, which they leave as they are",
    )
    args = parser.parse_args()
    if args.render:
        saved = json.loads(args.out.with_suffix(".json").read_text())
        args.out.write_text(render(saved["results"], saved["speed"], saved["meta"]))
        return
    if args.variant and args.limit:
        raise SystemExit("--variant measures on all the data, as the results it is set beside were")
    tasks = {**TASKS, "verification": partial(eval_verification, dlib_models=args.dlib_models)}
    ports = {name: free_port() for name in [*SERVICES, "redis"]}
    stack = Stack(ports=ports, log_dir=REPO / "var" / "log" / "eval", data_dir=REPO / "var" / "eval", services=SERVICES)
    stack.start_redis()
    stack.start_services()
    # Tasks not run this time keep their last results, so one task can be re-run after its model changed.
    previous = args.out.with_suffix(".json")
    results: dict[str, Any] = json.loads(previous.read_text())["results"] if previous.exists() else {}
    try:
        path = ServicePath(ports)
        for task in args.tasks:
            started = time.time()
            result = tasks[task](path, args.data, args.limit)
            if task in TASK_SERVICE:
                result["model"] = path.models[TASK_SERVICE[task]]
                result["detector"] = path.models["detector"]
                old = results.get(task)
                if args.variant:
                    if old and old.get("model") == result["model"]:
                        raise SystemExit(f"--variant, but the services run {result['model']}, the default")
                    result["date"] = str(datetime.date.today())
                    results.setdefault("variants", {}).setdefault(task, {})[result["model"]] = result
                    print(f"{task} (variant): {json.dumps(result)} ({time.time() - started:.0f}s)", flush=True)
                    continue
                # A new default model, or a new detector cutting its crops: keep the old result beside the new.
                if old and old.get("model") and _models(old) != _models(result):
                    old.setdefault("detector", "mtcnn")  # results from before the detector was recorded
                    results.setdefault("previous", {})[task] = old
            results[task] = result
            print(f"{task}: {json.dumps(results[task])} ({time.time() - started:.0f}s)", flush=True)
            if task == "verification":
                print("\n".join(dlib_table(result)), flush=True)
        path.close()
    finally:
        stack.stop()
    if args.variant and previous.exists():  # a variant's figures are kept before every folder's speed is measured
        previous.write_text(json.dumps({**json.loads(previous.read_text()), "results": results}, indent=2))
    speed = {}
    for name in sorted(p.parent.name for p in (REPO / "model-repo").glob("*/config.toml")):
        try:
            speed[name] = model_speed(name)
        except (OSError, ValueError, RuntimeError) as exc:  # a folder still being written is left out
            print(f"speed: {name} left out: {exc}", flush=True)
            speed[name] = {}
    speed["dlib_resnet [refine]"] = refine_speed("dlib_resnet")
    saved_meta = json.loads(previous.read_text())["meta"] if args.variant and previous.exists() else {}
    meta = {
        **saved_meta,  # a variant's run leaves the date of the main results as it was; the variant has its own
        "date": saved_meta.get("date", str(datetime.date.today())),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "data": str(args.data),
        "limit": f"At most {args.limit} images or pairs per task (random, seed 0)." if args.limit else "",
    }
    # The figures first: a failure while rendering must not lose a long run's results.
    (args.out.with_suffix(".json")).write_text(json.dumps({"meta": meta, "results": results, "speed": speed}, indent=2))
    args.out.write_text(render(results, speed, meta))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
