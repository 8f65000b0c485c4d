"""A gallery survives a Redis restart (AOF fsync'ed every second, as `make run` and the chart run it), and a hard
kill; the same kill without persistence loses the faces, so the check would catch persistence switched off."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import redis

from deploy.local.stack import free_port, redis_command, spawn, stop, wait_tcp
from services.embedder.gallery import Gallery, NotFound

DIM = 128


def start(data: Path, port: int, *extra: str) -> subprocess.Popen:
    """Redis as the project runs it; `extra` directives after the project's own override them."""
    proc = spawn([*redis_command(port, data), *extra], {}, data / "redis.log")
    wait_tcp(port)
    return proc


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()


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
        kill(proc)

        proc = start(tmp_path, port)
        gallery = Gallery(redis.Redis(port=port, protocol=2), "m", "1", DIM)
        assert identified(gallery, "durable", faces) == expected
        assert len(gallery.get_subject("durable", "s45").face_ids) == 1
    finally:
        stop(proc)


def test_the_project_redis_appends_and_fsyncs_every_second(tmp_path: Path) -> None:
    port = free_port()
    proc = start(tmp_path, port)
    try:
        config = redis.Redis(port=port, protocol=2).config_get("*")
        assert config["appendonly"] == "yes" and config["appendfsync"] == "everysec"
        assert config["aof-use-rdb-preamble"] == "yes"  # restarts load a snapshot, then the AOF's tail
        assert config["save"] == "3600 1"  # and an hourly dump.rdb to back up
        assert Path(config["dir"]) == tmp_path
    finally:
        stop(proc)


def test_a_hard_kill_without_persistence_loses_the_faces(tmp_path: Path) -> None:
    """The control: the kill-and-restart above fails when Redis keeps its data in memory only."""
    port = free_port()
    off = ("--appendonly", "no", "--save", "")
    proc = start(tmp_path, port, *off)
    try:
        gallery = Gallery(redis.Redis(port=port, protocol=2), "m", "1", DIM)
        enrol(gallery, "volatile", unit(10, seed=2))
        time.sleep(1.5)
        kill(proc)

        proc = start(tmp_path, port, *off)
        client = redis.Redis(port=port, protocol=2)
        assert client.dbsize() == 0
        with pytest.raises(NotFound):
            Gallery(client, "m", "1", DIM).count_faces("volatile")
    finally:
        stop(proc)
