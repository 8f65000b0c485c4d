"""A gallery survives a Redis restart (AOF on, as `make run` and the chart run it), and a hard kill."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import redis

from deploy.local.stack import free_port, redis_command, spawn, stop, wait_tcp
from services.embedder.gallery import Gallery

DIM = 128


def start(data: Path, port: int) -> subprocess.Popen:
    proc = spawn(redis_command(port, data), {}, data / "redis.log")
    wait_tcp(port)
    return proc


def unit(n: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def enrol(gallery: Gallery, collection: str, faces: np.ndarray, first: int = 0) -> None:
    for i, face in enumerate(faces, start=first):
        gallery.create_subject(collection, f"s{i}", f"Subject {i}")
        gallery.add_faces(collection, f"s{i}", face[None])


def identified(gallery: Gallery, collection: str, faces: np.ndarray) -> list[str]:
    return [m[0].subject_id if m else "" for m in gallery.identify(collection, faces, top_k=1, threshold=0.9)]


def test_enrolled_faces_survive_restart_and_kill(tmp_path: Path) -> None:
    port = free_port()
    faces = unit(50, seed=1)
    expected = [f"s{i}" for i in range(50)]
    proc = start(tmp_path, port)
    try:
        gallery = Gallery(redis.Redis(port=port, protocol=2), "m", "1", DIM)
        enrol(gallery, "durable", faces[:40])
        stop(proc)  # SIGTERM: Redis flushes the AOF and exits

        proc = start(tmp_path, port)
        gallery = Gallery(redis.Redis(port=port, protocol=2), "m", "1", DIM)
        assert identified(gallery, "durable", faces[:40]) == expected[:40]
        enrol(gallery, "durable", faces[40:], first=40)
        time.sleep(1.5)  # appendfsync everysec: at most one second of writes is at risk in a hard kill
        proc.send_signal(signal.SIGKILL)
        proc.wait()

        proc = start(tmp_path, port)
        gallery = Gallery(redis.Redis(port=port, protocol=2), "m", "1", DIM)
        assert identified(gallery, "durable", faces) == expected
        assert len(gallery.get_subject("durable", "s45").face_ids) == 1
    finally:
        stop(proc)
