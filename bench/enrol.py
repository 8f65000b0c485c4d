"""Enrolment through the embedder service: real aligned face crops over gRPC (AddFaces) → batched embedding →
pipelined Redis writes. Faces/s with one crop per call against batches of 32.

    python -m bench.enrol          # prints a table, writes bench/results/enrol.json

The crops are the seven real faces of the tests' photos (astronaut + t1.jpg), each enrolled many times with a
random one-pixel shift so no two crops are identical; what is measured is the service's throughput, not recall.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import grpc
import numpy as np
from faceplane.v1 import embedder_pb2, embedder_pb2_grpc

from deploy.local.stack import Stack, free_port
from services.detector.align import align_face
from services.detector.detectors import configured_detector
from services.runtime.crops import crop_to_proto
from services.runtime.modelrepo import read_config
from tests import images

REPO = Path(__file__).resolve().parents[1]
RUNS = ((1, 1_000), (32, 10_000))  # (faces per AddFaces call, faces enrolled)


def face_crops() -> list[np.ndarray]:
    crop = read_config(REPO / "model-repo" / "dlib_resnet").crop
    assert crop is not None
    detector = configured_detector(REPO / "model-repo")
    out = []
    for image in (images.astronaut(), images.group_six()):
        for face in detector.detect(image):
            out.append(align_face(image, face.landmarks, crop.size, template=np.array(crop.template)))
    return out


def main() -> None:
    crops = face_crops()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        ports = {"redis": free_port(), "embedder": free_port()}
        stack = Stack(ports=ports, log_dir=Path(tmp) / "log", data_dir=Path(tmp) / "redis", services=["embedder"])
        stack.start_redis()
        stack.start_services()
        results = []
        try:
            with grpc.insecure_channel(f"127.0.0.1:{ports['embedder']}") as channel:
                stub = embedder_pb2_grpc.EmbedderStub(channel)
                for batch, total in RUNS:
                    collection = f"bench-{batch}"
                    stub.CreateSubject(embedder_pb2.CreateSubjectRequest(collection=collection, subject_id="s"))
                    start = time.perf_counter()
                    for _ in range(total // batch):
                        picks = [
                            np.roll(crops[i], rng.integers(-1, 2), axis=1) for i in rng.integers(0, len(crops), batch)
                        ]
                        request = embedder_pb2.AddFacesRequest(
                            collection=collection, subject_id="s", crops=[crop_to_proto("dlib_150", c) for c in picks]
                        )
                        stub.AddFaces(request, timeout=120)
                    seconds = time.perf_counter() - start
                    results.append(
                        {"faces_per_call": batch, "faces": total, "seconds": seconds, "faces_per_s": total / seconds}
                    )
        finally:
            stack.stop()
    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    path = "gRPC AddFaces → ONNX dlib_resnet → Redis 8"
    print(f"enrolment through the embedder service ({path}) · {machine} · {datetime.date.today()}")
    print(f"{'faces per call':>15} {'faces':>7} {'seconds':>8} {'faces/s':>8}")
    for r in results:
        print(f"{r['faces_per_call']:>15} {r['faces']:>7} {r['seconds']:>8.1f} {r['faces_per_s']:>8.1f}")
    out = REPO / "bench" / "results" / "enrol.json"
    out.write_text(
        json.dumps({"date": str(datetime.date.today()), "machine": machine, "results": results}, indent=2) + "\n"
    )
    print(f"wrote {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
