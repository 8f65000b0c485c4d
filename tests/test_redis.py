"""`make run` brings a real Redis 8 with vector search (the gallery's store); check the one the project starts."""

from __future__ import annotations

import numpy as np
import redis

from deploy.local.stack import free_port, redis_command, spawn, stop, wait_tcp


def test_project_redis_is_8_with_an_hnsw_index(tmp_path) -> None:
    port = free_port()
    proc = spawn(redis_command(port, tmp_path), {}, tmp_path / "redis.log")
    try:
        wait_tcp(port)
        client = redis.Redis(port=port, protocol=2)
        assert int(client.info("server")["redis_version"].split(".")[0]) >= 8
        client.execute_command(
            "FT.CREATE",
            "idx",
            "ON",
            "HASH",
            "PREFIX",
            "1",
            "v:",
            "SCHEMA",
            "vec",
            "VECTOR",
            "HNSW",
            "6",
            "TYPE",
            "FLOAT32",
            "DIM",
            "4",
            "DISTANCE_METRIC",
            "COSINE",
        )
        vectors = np.eye(4, dtype=np.float32)
        for i, v in enumerate(vectors):
            client.hset(f"v:{i}", mapping={"vec": v.tobytes()})
        query = np.array([0.1, 0.9, 0.0, 0.0], dtype=np.float32).tobytes()
        reply = client.execute_command(
            "FT.SEARCH", "idx", "*=>[KNN 1 @vec $q]", "PARAMS", "2", "q", query, "DIALECT", "2", "RETURN", "0"
        )
        assert reply[0] == 1 and reply[1] == b"v:1"
        assert client.config_get("appendonly")["appendonly"] == "yes"
    finally:
        stop(proc)
