"""Serving speed: every model alone, the whole pipeline in-process, and POST /v1/analyze end to end.

    make bench   (python -m bench.serving [--seconds 10] [--features LIST]; writes bench/results/serving.json)

1. raw model throughput: each model in-process (ONNX Runtime, one thread), faces/s at batch 1 and its best batch;
2. end to end: POST /v1/analyze with every feature, at concurrency 1, 8 and 32, on a photo with one face and one
   with six; images/s and p50/p95/p99 latency, with the services' dynamic batching off and on, for the float models
   (the defaults before issue 23, `INT8=false`) and today's defaults (int8 variants where there are some): four
   stacks, one after the other;
3. serving efficiency: end-to-end faces/s over the in-process pipeline's faces/s (decode, detect, align, every
   model, on all cores) for the same photo on the same machine.
The load generator runs on the same machine as the stack and takes some of its CPU; that is part of the figure.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.detect import photo_640x480
from bench.load import faces_per_s, latency_summary, timed_posts
from deploy.local.stack import Stack, available_services, free_port
from services.agegender.model import age_gender_model
from services.attributes.model import AttributesModel
from services.detector.detectors import configured_detector
from services.detector.pipeline import FacePipeline
from services.embedder.model import EmbeddingModel
from services.emotion.model import EmotionModel
from services.generator.model import FaceGenerator
from services.runtime.modelrepo import LoadedModel, load_model, preferred_model
from tests import images

REPO = Path(__file__).resolve().parents[1]
MODEL_REPO = REPO / "model-repo"
FEATURES = "emotion,age,gender,mask,attributes,embedding"  # every default feature and the embedding; --features
BATCHES = (1, 4, 16, 32, 64)
Models = dict[str, tuple[LoadedModel, Callable[[np.ndarray], Any]]]
MODELS = {False: "float", True: "int8"}  # INT8 off: the defaults before issue 23; on: today's


def analysis_models(int8: bool, features: str = FEATURES) -> Models:
    """The model each analysis service runs by default (with `INT8` as given) and the function it calls, by service."""

    def model(name: str) -> LoadedModel:
        return load_model(MODEL_REPO, preferred_model(MODEL_REPO, name, "onnx", int8))

    emotion = model("emotion_faceplane")
    agegender = model("agegender_faceplane")
    attributes = model("celeba_attributes")
    embedder = load_model(MODEL_REPO, "dlib_resnet")  # the embedder never switches (services/embedder/servicer.py)
    models = {
        "emotion": (emotion, EmotionModel(emotion).predict),
        "agegender": (agegender, age_gender_model(agegender).predict),
        "attributes": (attributes, AttributesModel(attributes, model("mask_faceplane")).predict),
        "embedder": (embedder, EmbeddingModel(embedder).embed),
    }
    if "embedding" not in features.split(","):
        del models["embedder"]  # the in-process reference does the same work as the requests
    return models


def raw_models(models: Models, pipeline: FacePipeline, photo: np.ndarray, seconds: float) -> list[dict[str, Any]]:
    """Each model alone on real crops of `photo`'s faces, repeated up to the batch size."""
    data = images.encode(photo, quality=92)
    rows = []
    for service, (model, fn) in models.items():
        assert model.config.crop is not None
        crops = np.stack([f.crops[0] for f in pipeline.run(data, [model.config.crop]).faces])
        per_batch = {b: faces_per_s(fn, np.resize(crops, (b, *crops.shape[1:])), seconds) for b in BATCHES}
        best = max(per_batch, key=per_batch.__getitem__)
        rows.append({"model": f"{service}: {model.config.name}", "batch_1": per_batch[1], "best": per_batch[best],
                     "best_batch": best})  # fmt: skip
    generator = FaceGenerator(load_model(MODEL_REPO, "dcgan_faces"))
    per_batch = {b: faces_per_s(lambda x: generator.generate(len(x), 0), np.zeros((b, 1)), seconds) for b in BATCHES}
    best = max(per_batch, key=per_batch.__getitem__)
    rows.append({"model": "generator: dcgan_faces", "batch_1": per_batch[1], "best": per_batch[best],
                 "best_batch": best})  # fmt: skip
    detect = faces_per_s(lambda x: pipeline.run(data), np.zeros((1, 1)), seconds)
    name = f"detector: {pipeline.detector.config.name} (images/s, 640×480)"
    rows.append({"model": name, "batch_1": detect, "best": detect, "best_batch": 1})
    return rows


def pipeline_faces_per_s(models: Models, pipeline: FacePipeline, data: bytes, seconds: float) -> float:
    """Everything /v1/analyze computes, in-process with no network, one image per worker thread on all cores."""
    crops = [m.config.crop for m, _ in models.values()]

    def one() -> int:
        faces = pipeline.run(data, crops).faces
        for i, (_, fn) in enumerate(models.values()):
            fn(np.stack([f.crops[i] for f in faces]))
        return len(faces)

    workers = os.cpu_count() or 1
    one()
    done, start = 0, time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        while time.perf_counter() - start < seconds:
            done += sum(pool.map(lambda _: one(), range(workers)))
    return done / (time.perf_counter() - start)


async def load(url: str, data: bytes, concurrency: int, seconds: float, features: str) -> dict[str, Any]:
    """`concurrency` clients posting the photo back to back for `seconds` (after a short warm-up)."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:

        async def post(_: int) -> int | None:
            files = {"image": ("photo.jpg", data, "image/jpeg")}
            r = await client.post("/v1/analyze", files=files, params={"features": features})
            body = r.json() if r.status_code == 200 else {}
            return len(body["faces"]) if body and not body.get("errors") else None

        latencies, faces, errors, wall = await timed_posts(post, concurrency, seconds)
    summary = latency_summary(latencies, wall)
    return {"concurrency": concurrency, "errors": errors, "faces_per_s": faces / wall, **summary}


def end_to_end(
    photos: dict[str, bytes], batching: bool, seconds: float, backend: str, int8: bool, features: str
) -> list[dict[str, Any]]:
    services = available_services()
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(
            ports={name: free_port() for name in ["gateway", "redis", *services]},
            log_dir=Path(tmp) / "log",
            data_dir=Path(tmp) / "redis",
            services=services,
        )
        stack.start_timeout_s = 300  # the models warm up on cores the load generator and other stacks' leftovers share
        for service in services:
            stack.extra_env[f"FACEPLANE_{service.upper()}_BATCHING"] = str(batching).lower()
            stack.extra_env[f"FACEPLANE_{service.upper()}_BACKEND"] = backend
            stack.extra_env[f"FACEPLANE_{service.upper()}_INT8"] = str(int8).lower()
        stack.start()
        try:
            url = f"http://127.0.0.1:{stack.ports['gateway']}"
            rows = []
            for photo, data in photos.items():
                for concurrency in (1, 8, 32):
                    result = asyncio.run(load(url, data, concurrency, seconds, features))
                    rows.append({"photo": photo, "models": MODELS[int8], "batching": batching, **result})
                    state = "on " if batching else "off"
                    print(
                        f"  {MODELS[int8]:5} batching {state} {photo:20} c={concurrency:<3} "
                        f"{result['images_per_s']:6.1f} img/s  p99 {result['ms_p99']:7.0f} ms",
                        flush=True,
                    )
            return rows
        finally:
            stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="per measurement")
    parser.add_argument("--backend", default="onnx", help="the services' inference backend (torch: CUDA if present)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "serving.json")
    parser.add_argument("--features", default=FEATURES, help="what each request asks for (default: %(default)s)")
    args = parser.parse_args()
    group = photo_640x480()
    photos = {
        "1 face (512×512)": images.encode(images.astronaut(), quality=92),
        "6 faces (640×480)": images.encode(group, quality=92),
    }
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or platform.platform()}"
    print(f"faceplane serving benchmark · {machine} · {datetime.date.today()}", flush=True)

    pipeline = FacePipeline(configured_detector(MODEL_REPO), 10**8, 100)
    raw, in_process = [], {}
    print(f"\n1. each model alone, in-process (ONNX Runtime, 1 thread)\n{'model':44} {'batch 1':>9} {'best':>9}")
    for int8 in (False, True):
        models = analysis_models(int8, args.features)
        for r in raw_models(models, pipeline, group, args.seconds / 4):
            raw.append({**r, "models": MODELS[int8]})
            print(f"{r['model']:44} {r['batch_1']:9.1f} {r['best']:9.1f}  (batch {r['best_batch']}) faces/s")
        for photo, data in photos.items():
            in_process[(MODELS[int8], photo)] = pipeline_faces_per_s(models, pipeline, data, args.seconds)
    e2e = []
    print("\n2. POST /v1/analyze, all features", flush=True)
    for int8 in (False, True):
        for batching in (False, True):
            e2e += end_to_end(photos, batching, args.seconds, args.backend, int8, args.features)
    header = ["models", "photo", "conc", "batching", "img/s", "faces/s", "p50 ms", "p95 ms", "p99 ms", "errors"]
    print("\n" + " | ".join(header))
    for r in e2e:
        rates = [f"{r['images_per_s']:.1f}", f"{r['faces_per_s']:.1f}"]
        latency = [f"{r[k]:.0f}" for k in ("ms_p50", "ms_p95", "ms_p99")]
        cells = [r["models"], r["photo"], r["concurrency"], "on" if r["batching"] else "off", *rates, *latency,
                 r["errors"]]  # fmt: skip
        print(" | ".join(str(c) for c in cells))

    efficiency = []
    print("\n3. serving efficiency: best end-to-end faces/s ÷ in-process pipeline faces/s (all cores)")
    for (kind, photo), raw_rate in in_process.items():
        best = max(r["faces_per_s"] for r in e2e if r["photo"] == photo and r["models"] == kind)
        efficiency.append({"models": kind, "photo": photo, "pipeline_faces_per_s": raw_rate,
                           "best_end_to_end_faces_per_s": best, "efficiency": best / raw_rate})  # fmt: skip
        print(f"{kind:5} {photo:20} pipeline {raw_rate:7.1f} faces/s · end to end {best:7.1f} · {best / raw_rate:.2f}")

    out = args.out
    detector = pipeline.detector.config.name
    record = {"date": str(datetime.date.today()), "machine": machine, "seconds_per_measurement": args.seconds,
              "backend": args.backend, "detector": detector, "features": args.features,
              "raw_models": raw, "end_to_end": e2e, "efficiency": efficiency}  # fmt: skip
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
