"""The model servers side by side: the same model calls through every backend that can run on this machine.

    make bench-model-servers   (python -m bench.model_servers [--seconds 5])   # → bench/results/model_servers.json

Backends: onnx (ONNX Runtime in-process, one thread), torchserve (TorchServe 0.12, our handler running ONNX
Runtime in its worker), tfserving (our stand-in for TF Serving: TensorFlow 2.21 running the exported SavedModels;
the real binary cannot be installed here) and kserve_v2 (MLServer 1.7.1 with our ONNX Runtime model class).
Three models (emotion: light; the dlib ResNet: heavy; MTCNN's P-Net on a 60×80 window), called by one client
thread at batch 1 and 16, back to back: calls/s, faces/s and median ms per call. Client and server share the
machine's cores, as on one node; the figures compare each protocol's and server's overhead on the CPU.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from services.runtime.backends import BackendOptions, create_backend
from services.runtime.modelrepo import served_files
from tests.deploy.model_servers import model_server
from tests.onnx_inputs import sample_inputs

REPO = Path(__file__).resolve().parents[1]
MODEL_REPO = REPO / "model-repo"
MODELS = ["emotion_faceplane-model", "dlib_resnet-model", "mtcnn-pnet"]
BATCHES = (1, 16)
KINDS = ("onnx", "torchserve", "tfserving", "kserve_v2")


def measure(kind: str, url: str, files: dict[str, Path], seconds: float) -> list[dict]:
    options = BackendOptions(kind=kind, url=url, timeout_s=60)
    rows = []
    for name, path in files.items():
        backend = create_backend(options, path, name)
        for batch in BATCHES:
            rng = np.random.default_rng(0)
            feeds = {k: rng.uniform(0, 255, v.shape).astype(v.dtype) for k, v in sample_inputs(path, batch).items()}
            backend.run(feeds)  # warm-up
            latencies = []
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                start = time.perf_counter()
                backend.run(feeds)
                latencies.append(time.perf_counter() - start)
            calls = len(latencies) / max(sum(latencies), 1e-9)
            row = {"backend": kind, "model": name, "batch": batch, "calls_per_s": calls, "faces_per_s": calls * batch,
                   "ms_p50": 1000 * float(np.median(latencies))}  # fmt: skip
            rows.append(row)
            print(f"  {kind:<10} {name:<26} batch {batch:<3} {row['faces_per_s']:8.1f} faces/s  "
                  f"{row['ms_p50']:7.2f} ms/call", flush=True)  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="per model and batch size")
    parser.add_argument("--kinds", nargs="*", default=list(KINDS), choices=KINDS)
    args = parser.parse_args()
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or platform.platform()}"
    print(f"faceplane model-server benchmark · {machine} · {datetime.date.today()}", flush=True)
    files = {name: path for name, path in served_files(MODEL_REPO).items() if name in MODELS}
    rows = []
    for kind in args.kinds:
        if kind == "onnx":
            rows += measure(kind, "", files, args.seconds)
            continue
        with tempfile.TemporaryDirectory() as work, model_server(kind, Path(work), files) as url:
            rows += measure(kind, url, files, args.seconds)

    print(f"\n{'model':<26} {'batch':>5} " + " ".join(f"{k:>11}" for k in args.kinds) + "   (faces/s)")
    for name in files:
        for batch in BATCHES:
            cells = [next(r["faces_per_s"] for r in rows if (r["backend"], r["model"], r["batch"]) == (k, name, batch))
                     for k in args.kinds]  # fmt: skip
            print(f"{name:<26} {batch:>5} " + " ".join(f"{c:11.1f}" for c in cells))
    out = REPO / "bench" / "results" / "model_servers.json"
    record = {"date": str(datetime.date.today()), "machine": machine, "seconds": args.seconds, "rows": rows}
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
