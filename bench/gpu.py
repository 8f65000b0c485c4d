"""The GPU run: detection + embedding end to end on single-face 640×480 JPEGs, the whole stack on one machine.

    make bench-gpu      (python -m bench.gpu [--backend torch] [--layout 1,1,1 --layout 3,12,1])
                        # on the GPU machine; prints tables, writes bench/results/serving_gpu.json

The stack is started as replicas on loopback, as a cluster would run it (`--layout`): gateway processes (the load
spreads over them, as a Kubernetes Service would), detector and embedder processes
(every gateway spreads its calls over them with gRPC's round_robin). Load comes from `--clients` processes
posting `POST /v1/analyze?features=embedding` back to back at each concurrency. First the plain stack (one of
each), then the replicated one. Then, with the stack stopped, what bounds it: JPEG decode on one core, the
detector alone in-process (one thread), the embedder alone at batch 1 and its best batch.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import multiprocessing
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from bench.load import faces_per_s, latency_summary, timed_posts
from deploy.local.stack import Stack, free_port
from tests import images

REPO = Path(__file__).resolve().parents[1]
MODEL_REPO = REPO / "model-repo"


def photo_one_face_640x480() -> bytes:
    """The astronaut's upper 512×384 (her face whole inside), scaled to 640×480, JPEG quality 92."""
    crop = Image.fromarray(images.astronaut()).crop((0, 0, 512, 384)).resize((640, 480), Image.LANCZOS)
    return images.encode(np.asarray(crop), quality=92)


def client_process(urls: list[str], data: bytes, clients: int, first: int, start_at: float, seconds: float) -> dict:
    """One load process: `clients` connections numbered from `first`, client i on gateway i mod len(urls); after a
    warm-up, all processes start timing at the wall-clock `start_at`."""

    async def run() -> dict[str, Any]:
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        sessions = [httpx.AsyncClient(base_url=u, timeout=60, limits=limits) for u in urls]

        async def post(i: int) -> int | None:
            files = {"image": ("photo.jpg", data, "image/jpeg")}
            session = sessions[(first + i) % len(urls)]
            r = await session.post("/v1/analyze", files=files, params={"features": "embedding"})
            faces = r.json()["faces"] if r.status_code == 200 else []
            ok = len(faces) == 1 and "embedding" in faces[0]
            return 1 if ok else None

        latencies, _, errors, wall = await timed_posts(post, clients, seconds, warmups=2, start_at=start_at)
        for s in sessions:
            await s.aclose()
        return {"latencies": latencies, "errors": errors, "wall": wall}

    return asyncio.run(run())


def load(urls: list[str], data: bytes, concurrency: int, processes: int, seconds: float) -> dict[str, Any]:
    processes = min(processes, concurrency)
    shares = [concurrency // processes + (i < concurrency % processes) for i in range(processes)]
    firsts = [sum(shares[:i]) for i in range(processes)]
    start_at = time.time() + 5 + 0.1 * concurrency  # after every process has spawned and warmed up
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        jobs = [(urls, data, n, first, start_at, seconds) for n, first in zip(shares, firsts, strict=True)]
        parts = pool.starmap(client_process, jobs)
    latencies = [x for p in parts for x in p["latencies"]]
    summary = latency_summary(latencies, max(p["wall"] for p in parts))
    return {"concurrency": concurrency, "errors": sum(p["errors"] for p in parts), **summary}


def replicated_stack(log_dir: Path, backend: str, layout: tuple[int, int, int]) -> Stack:
    """Gateways, detectors and embedders as `layout` says, no Redis (analysis needs none); not started yet."""
    gateways, detectors, embedders = layout
    stack = Stack(
        ports={name: free_port() for name in ("gateway", "detector", "embedder")},
        log_dir=log_dir,
        data_dir=log_dir / "redis",
        services=["detector", "embedder"],
        replicas={"gateway": gateways, "detector": detectors, "embedder": embedders},
        start_timeout_s=180,  # model loading on CUDA, a dozen processes at once
    )
    stack.extra_env = {
        "FACEPLANE_DETECTOR_BACKEND": backend,
        "FACEPLANE_EMBEDDER_BACKEND": backend,
        "FACEPLANE_GATEWAY_LOG_LEVEL": "WARNING",
    }
    return stack


def end_to_end(args: argparse.Namespace, data: bytes, layout: tuple[int, int, int]) -> list[dict[str, Any]]:
    gateways, detectors, embedders = layout
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        stack = replicated_stack(Path(tmp), args.backend, layout)
        try:
            stack.start(with_redis=False)
        except Exception:
            for log in sorted(Path(tmp).glob("*.log")):
                print(f"--- {log.name}\n" + log.read_text(errors="replace")[-3000:])
            raise
        urls = stack.gateway_urls()
        try:
            # Every replica's first calls on CUDA are slow (start-up per input shape): warm them all, untimed.
            load(urls, data, 4 * (detectors + embedders), args.clients, 2.0)
            for concurrency in args.concurrency:
                r = load(urls, data, concurrency, args.clients, args.seconds)
                r.update(gateways=gateways, detectors=detectors, embedders=embedders)
                rows.append(r)
                print(f"  {gateways} gw · {detectors} det · {embedders} emb  c={concurrency:<4} "
                      f"{r['images_per_s']:7.1f} img/s  p50 {r['ms_p50']:6.1f}  p99 {r['ms_p99']:6.1f} ms  "
                      f"errors {r['errors']}", flush=True)  # fmt: skip
        finally:
            stack.stop()
    return rows


def components(backend: str, data: bytes, seconds: float) -> dict[str, float]:
    """Each stage alone in this process, one thread: what a core or the accelerator gives per second."""
    import cv2

    from services.detector.decode import decode_image
    from services.detector.detectors import configured_detector
    from services.detector.pipeline import FacePipeline
    from services.embedder.model import EmbeddingModel
    from services.runtime.backends import BackendOptions
    from services.runtime.modelrepo import load_model

    cv2.setNumThreads(1)  # as in the services
    options = BackendOptions(kind=backend)  # type: ignore[arg-type]
    embedder = load_model(MODEL_REPO, "dlib_resnet", options)
    assert embedder.config.crop is not None
    pipeline = FacePipeline(configured_detector(MODEL_REPO, options), 10**8, 100)
    crop = pipeline.run(data, [embedder.config.crop]).faces[0].crops[0]
    embed = EmbeddingModel(embedder).embed
    one = np.zeros((1, 1))  # faces_per_s counts len(x) per call: one image
    out = {
        "decode_images_per_s_one_core": faces_per_s(lambda _: decode_image(data, 10**8), one, seconds),
        "detect_images_per_s_one_thread": faces_per_s(lambda _: pipeline.run(data), one, seconds),
        "detect_align_images_per_s_one_thread": faces_per_s(
            lambda _: pipeline.run(data, [embedder.config.crop]), one, seconds
        ),
    }
    for batch in (1, 16, 64, 256):
        out[f"embed_faces_per_s_batch_{batch}"] = faces_per_s(embed, np.repeat(crop[None], batch, axis=0), seconds)
    return out


def layout_arg(value: str) -> tuple[int, int, int]:
    gateways, detectors, embedders = (int(n) for n in value.split(","))
    return gateways, detectors, embedders


def machine() -> str:
    name = f"{platform.machine()}, {os.cpu_count()} cores"
    try:
        import torch

        if torch.cuda.is_available():
            name += f", {torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    except ImportError:
        pass
    return name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="torch", help="the services' inference backend (torch: CUDA if present)")
    parser.add_argument("--seconds", type=float, default=8.0, help="per measurement")
    parser.add_argument("--layout", action="append", type=layout_arg, help="GATEWAYS,DETECTORS,EMBEDDERS (repeatable;"
                        " default: 1,1,1 then 3,12,1)")  # fmt: skip
    parser.add_argument("--clients", type=int, default=2, help="load-generating processes")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 128])
    parser.add_argument("--no-components", action="store_true", help="skip measuring each stage alone")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "serving_gpu.json")
    args = parser.parse_args()
    data = photo_one_face_640x480()
    print(f"faceplane GPU benchmark · {machine()} · {datetime.date.today()} · backend {args.backend}", flush=True)

    print("\nPOST /v1/analyze?features=embedding, one face, 640×480 JPEG", flush=True)
    rows = []
    for layout in args.layout or [(1, 1, 1), (3, 12, 1)]:
        rows += end_to_end(args, data, layout)

    parts = {}
    if not args.no_components:
        print("\nwhat bounds it: each stage alone, one thread", flush=True)
        parts = components(args.backend, data, args.seconds / 2)
        for name, value in parts.items():
            print(f"  {name:40} {value:9.1f}")

    record = {"date": str(datetime.date.today()), "machine": machine(), "backend": args.backend,
              "seconds_per_measurement": args.seconds, "end_to_end": rows, "components": parts}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
