"""Per-process configuration from the environment: FACEPLANE_<SERVICE>_<FIELD>, e.g. FACEPLANE_DETECTOR_PORT."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, TypeVar

from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[2]


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    host: str = "127.0.0.1"
    port: int = 50051
    metrics_host: str = "127.0.0.1"
    # 0 disables the metrics endpoint.
    metrics_port: int = 0
    model_repo: Path = REPO_ROOT / "model-repo"
    backend: Literal["onnx"] = "onnx"
    # Threads ONNX Runtime may use per model call. One is fastest for our small models (measured in
    # model-repo/mtcnn/card.md): cores are better spent on concurrent requests, see inference_workers.
    intra_op_threads: int = 1
    # Model calls running at once (worker threads); 0 means one per CPU core.
    inference_workers: int = 0
    log_level: str = "INFO"
    log_json: bool = True
    # Seconds in-flight RPCs get to finish after SIGTERM.
    shutdown_grace_s: float = 5.0
    max_message_bytes: int = 64 * 1024 * 1024
    # Seconds between checks of what the service depends on (health names of its probes).
    probe_interval_s: float = 2.0


S = TypeVar("S", bound=ServiceSettings)


def load_settings(service: str, cls: type[S] = ServiceSettings) -> S:  # type: ignore[assignment]
    return cls(_env_prefix=f"FACEPLANE_{service.upper()}_")
