"""Frames per second through `/v1/stream`, each detector in turn on a stack of its own.

    python -m bench.stream [--seconds 15] [--features emotion,age,gender]   # `make bench-stream`

One client sends a 640×480 JPEG frame (the six-face group photo), waits for its answer, sends the next: the
analysed frames per second one live stream gets, with the demo's features. Writes bench/results/stream.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import websocket

from deploy.local.stack import REPO_ROOT, Stack, free_port
from tests import images

SERVICES = ["detector", "emotion", "agegender"]


def frames_per_s(url: str, frame: bytes, seconds: float) -> dict[str, float]:
    stream = websocket.create_connection(url, timeout=60)
    try:
        for _ in range(3):  # warm-up
            stream.send_binary(frame)
            stream.recv()
        latencies, faces, end = [], [], time.perf_counter() + seconds
        while time.perf_counter() < end:
            start = time.perf_counter()
            stream.send_binary(frame)
            answer = json.loads(stream.recv())
            latencies.append(time.perf_counter() - start)
            faces.append(len(answer.get("faces", [])))
    finally:
        stream.close()
    return {
        "frames_per_s": len(latencies) / sum(latencies),
        "ms_p50": 1000 * statistics.median(latencies),
        "ms_p95": 1000 * statistics.quantiles(latencies, n=20)[18],
        "faces_per_frame": statistics.mean(faces),
    }


def one_detector(detector: str, frame: bytes, features: str, seconds: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(
            ports={name: free_port() for name in ["gateway", *SERVICES]},
            log_dir=Path(tmp) / "log",
            data_dir=Path(tmp) / "redis",
            services=SERVICES,
            extra_env={"FACEPLANE_DETECTOR_MODEL": detector},
        )
        stack.start(with_redis=False)
        try:
            base = stack.gateway_urls()[0]
            with httpx.Client(base_url=base) as client:
                deadline = time.monotonic() + 120
                while client.get("/readyz").json().get("status") != "ready" and time.monotonic() < deadline:
                    time.sleep(0.2)
            url = base.replace("http://", "ws://") + f"/v1/stream?features={features}"
            return frames_per_s(url, frame, seconds)
        finally:
            stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--features", default="emotion,age,gender")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results" / "stream.json")
    args = parser.parse_args()
    frame = images.encode(images.group_six(), quality=85)
    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    print(f"/v1/stream, one client, 640×480 frames, features {args.features} · {machine} · {datetime.date.today()}")
    results = []
    for detector in ("yunet", "mtcnn"):
        r = {"detector": detector, **one_detector(detector, frame, args.features, args.seconds)}
        results.append(r)
        print(f"{detector:6} {r['frames_per_s']:6.1f} frames/s · p50 {r['ms_p50']:6.1f} ms · p95 {r['ms_p95']:6.1f} ms "
              f"· {r['faces_per_frame']:.1f} faces a frame", flush=True)  # fmt: skip
    record = {"date": str(datetime.date.today()), "machine": machine, "features": args.features, "results": results}
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
