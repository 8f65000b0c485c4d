"""Detector speed on one 640×480 photo (six faces), YuNet and MTCNN side by side in one run: in-process, and through
a real detector service of each over gRPC.

make bench-detect   (python -m bench.detect)   # prints a table, writes bench/results/detect.json

The two detectors are timed call by call in turn (in-process and at concurrency 1 over gRPC), and in alternating
blocks at higher concurrency, so a machine that is busy with something else slows both alike.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
from faceplane.v1 import common_pb2, detector_pb2, detector_pb2_grpc
from PIL import Image

from deploy.local.stack import free_port, spawn, stop, wait_grpc_serving
from services.detector.detectors import create_detector
from services.runtime.backends import BackendOptions
from services.runtime.modelrepo import load_model
from tests import images  # the tests' real photos

REPO = Path(__file__).resolve().parents[1]
DETECTORS = ["yunet", "mtcnn"]
REPEATS = 40


def photo_640x480() -> np.ndarray:
    group = Image.fromarray(images.group_six())  # 1280×886
    return np.asarray(group.resize((693, 480), Image.LANCZOS).crop((26, 0, 666, 480)))


def timed_in_turn(calls: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Seconds per call of each, the calls taken in turn (one warm-up each first)."""
    for fn in calls.values():
        fn()
    out: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, fn in calls.items():
            start = time.perf_counter()
            fn()
            out[name].append(time.perf_counter() - start)
    return out


def concurrent(fn: Callable[[], object], concurrency: int, calls: int) -> tuple[list[float], float]:
    """Latencies of `calls` calls made by `concurrency` threads, and the wall time of them all."""

    def one(_: int) -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    with ThreadPoolExecutor(concurrency) as pool:
        start = time.perf_counter()
        latencies = list(pool.map(one, range(calls)))
        return latencies, time.perf_counter() - start


def row(detector: str, case: str, seconds: list[float], concurrency: int = 1, wall: float | None = None) -> dict:
    wall = wall if wall is not None else sum(seconds)
    return {
        "detector": detector,
        "case": case,
        "concurrency": concurrency,
        "images_per_s": len(seconds) / wall,
        "ms_p50": 1000 * statistics.median(seconds),
        "ms_p95": 1000 * float(np.percentile(seconds, 95)),
    }


def in_process(image: np.ndarray) -> tuple[list[dict], dict[str, int]]:
    results, faces = [], {}
    for threads, label in ((0, "ORT threads: auto"), (1, "ORT threads: 1, the default")):
        options = BackendOptions(intra_op_threads=threads)
        detectors = {name: create_detector(load_model(REPO / "model-repo", name, options)) for name in DETECTORS}
        faces = {name: len(d.detect(image)) for name, d in detectors.items()}
        times = timed_in_turn({name: lambda d=d: d.detect(image) for name, d in detectors.items()}, REPEATS)
        results += [row(name, f"in-process, {label}", times[name]) for name in DETECTORS]
    return results, faces


def over_grpc(jpeg: bytes) -> list[dict]:
    ports = {name: free_port() for name in DETECTORS}
    command = [sys.executable, "-m", "services.detector"]
    procs = [
        spawn(command, {"FACEPLANE_DETECTOR_PORT": str(port), "FACEPLANE_DETECTOR_MODEL": name})
        for name, port in ports.items()
    ]
    crop = common_pb2.CropSpec(name="arcface_112", size=112)
    request = detector_pb2.DetectRequest(image=common_pb2.Image(data=jpeg), crops=[crop])
    results = []
    try:
        channels = {name: grpc.insecure_channel(f"127.0.0.1:{port}") for name, port in ports.items()}
        for port in ports.values():
            wait_grpc_serving(f"127.0.0.1:{port}")
        stubs = {name: detector_pb2_grpc.DetectorStub(channel) for name, channel in channels.items()}
        calls = {name: lambda s=stub: s.Detect(request, timeout=30) for name, stub in stubs.items()}
        times = timed_in_turn(calls, REPEATS)
        results += [row(name, "gRPC Detect (JPEG in, 112 px crops out)", times[name]) for name in DETECTORS]
        for concurrency in (2, 4):
            for name in DETECTORS:
                latencies, wall = concurrent(calls[name], concurrency, 60)
                results.append(row(name, "gRPC Detect", latencies, concurrency, wall))
        for channel in channels.values():
            channel.close()
    finally:
        stop(*procs)
    return results


def main() -> None:
    image = photo_640x480()
    jpeg = images.encode(image, quality=92)
    results, faces = in_process(image)
    results += over_grpc(jpeg)

    machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or platform.platform()}"
    found = ", ".join(f"{name} {n}" for name, n in faces.items())
    print(f"detectors: {', '.join(DETECTORS)} (ONNX Runtime, CPU) · 640×480 JPEG, faces found: {found} · {machine} · "
          f"{datetime.date.today()}")  # fmt: skip
    print(f"{'detector':8} {'case':42} {'conc':>4} {'img/s':>7} {'p50 ms':>8} {'p95 ms':>8}")
    for r in results:
        print(
            f"{r['detector']:8} {r['case']:42} {r['concurrency']:>4} {r['images_per_s']:7.1f} {r['ms_p50']:8.1f} "
            f"{r['ms_p95']:8.1f}"
        )
    speed = {(r["detector"], r["case"], r["concurrency"]): r["images_per_s"] for r in results}
    default = ("in-process, ORT threads: 1, the default", 1)
    ratio = speed[("yunet", *default)] / speed[("mtcnn", *default)]
    print(f"yunet / mtcnn, in-process (one thread): {ratio:.1f}×")
    out = REPO / "bench" / "results" / "detect.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "date": str(datetime.date.today()),
        "machine": machine,
        "faces": faces,
        "yunet_over_mtcnn_in_process": ratio,
        "results": results,
    }
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
