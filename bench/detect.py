"""Detector speed on one 640×480 photo (six faces): in-process, and through a real detector service over gRPC.

make bench-detect   (python -m bench.detect)   # prints a table, writes bench/results/detect.json
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
from faceplane.v1 import common_pb2, detector_pb2, detector_pb2_grpc
from PIL import Image

from deploy.local.stack import free_port, spawn, stop, wait_grpc_serving
from services.detector.model import MtcnnDetector
from services.runtime.backends import BackendOptions
from services.runtime.modelrepo import load_model
from tests import images  # the tests' real photos

REPO = Path(__file__).resolve().parents[1]


def photo_640x480() -> np.ndarray:
    group = Image.fromarray(images.group_six())  # 1280×886
    return np.asarray(group.resize((693, 480), Image.LANCZOS).crop((26, 0, 666, 480)))


def timed(fn, repeats: int) -> list[float]:  # noqa: ANN001
    fn()  # warm-up
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def row(name: str, seconds: list[float], concurrency: int = 1, wall: float | None = None) -> dict:
    wall = wall if wall is not None else sum(seconds)
    return {
        "case": name,
        "concurrency": concurrency,
        "images_per_s": len(seconds) / wall,
        "ms_p50": 1000 * statistics.median(seconds),
        "ms_p95": 1000 * float(np.percentile(seconds, 95)),
    }


def main() -> None:
    image = photo_640x480()
    jpeg = images.encode(image, quality=92)
    results = []
    for threads, label in ((0, "ORT threads: auto"), (1, "ORT threads: 1, the default")):
        detector = MtcnnDetector(load_model(REPO / "model-repo", "mtcnn", BackendOptions(intra_op_threads=threads)))
        results.append(row(f"in-process, {label}", timed(lambda d=detector: d.detect(image), 40)))
    faces = len(detector.detect(image))

    port = free_port()
    proc = spawn([sys.executable, "-m", "services.detector"], {"FACEPLANE_DETECTOR_PORT": str(port)})
    try:
        wait_grpc_serving(f"127.0.0.1:{port}")
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = detector_pb2_grpc.DetectorStub(channel)
            crop = common_pb2.CropSpec(name="arcface_112", size=112)
            request = detector_pb2.DetectRequest(image=common_pb2.Image(data=jpeg), crops=[crop])
            results.append(row("gRPC Detect (JPEG in, 112 px crops out)", timed(lambda: stub.Detect(request), 40)))
            for concurrency in (2, 4):
                with ThreadPoolExecutor(concurrency) as pool:
                    start = time.perf_counter()
                    latencies = list(pool.map(lambda _: timed(lambda: stub.Detect(request), 1)[0], range(60)))
                    wall = time.perf_counter() - start
                results.append(row("gRPC Detect", latencies, concurrency, wall))
    finally:
        stop(proc)

    machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or platform.platform()}"
    print(f"detector: mtcnn (ONNX Runtime, CPU) · 640×480 JPEG, {faces} faces · {machine} · {datetime.date.today()}")
    print(f"{'case':42} {'conc':>4} {'img/s':>7} {'p50 ms':>8} {'p95 ms':>8}")
    for r in results:
        print(f"{r['case']:42} {r['concurrency']:>4} {r['images_per_s']:7.1f} {r['ms_p50']:8.1f} {r['ms_p95']:8.1f}")
    out = REPO / "bench" / "results" / "detect.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {"date": str(datetime.date.today()), "machine": machine, "faces": faces, "results": results}
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
