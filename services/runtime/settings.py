"""Per-process configuration from the environment: FACEPLANE_<SERVICE>_<FIELD>, e.g. FACEPLANE_DETECTOR_PORT."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.runtime.backends import BackendKind, BackendOptions

REPO_ROOT = Path(__file__).resolve().parents[2]


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    host: str = "127.0.0.1"
    port: int = 50051
    metrics_host: str = "127.0.0.1"
    # 0 disables the metrics endpoint.
    metrics_port: int = 0
    model_repo: Path = REPO_ROOT / "model-repo"
    # Where inference runs: onnx (in-process, the default), torch (in-process, CUDA when present), torchserve
    # (TorchServe's gRPC inference API at backend_url), tfserving (TF Serving's gRPC Predict API) or kserve_v2 (the
    # Open Inference Protocol's gRPC API: Triton, KServe, MLServer).
    backend: BackendKind = "onnx"
    backend_url: str = ""
    backend_device: str = "auto"
    backend_fp16: bool = True
    backend_timeout_s: float = 10.0
    backend_retries: int = 2
    # Threads ONNX Runtime may use per model call. One is fastest for our small models (measured in
    # model-repo/mtcnn/card.md): cores are better spent on concurrent requests, see inference_workers.
    intra_op_threads: int = 1
    # Dynamic batching across concurrent requests, sized per model by [batching] in its config.toml.
    batching: bool = True
    # Model calls running at once (worker threads); 0 means one per CPU core.
    inference_workers: int = 0
    log_level: str = "INFO"
    log_json: bool = True
    # Seconds in-flight RPCs get to finish after SIGTERM.
    shutdown_grace_s: float = 5.0
    max_message_bytes: int = 64 * 1024 * 1024
    # Seconds a client connection may live; after it the client reconnects (and re-resolves the service's name).
    max_connection_age_s: float = Field(default=300.0, gt=0)
    # Seconds between checks of what the service depends on (health names of its probes).
    probe_interval_s: float = 2.0
    # Seconds the model warm-up may take before the service reports SERVING anyway (a slow or absent model server).
    warm_up_timeout_s: float = Field(default=30.0, gt=0)

    def backend_options(self) -> BackendOptions:
        return BackendOptions(
            kind=self.backend,
            intra_op_threads=self.intra_op_threads,
            device=self.backend_device,
            fp16=self.backend_fp16,
            url=self.backend_url,
            timeout_s=self.backend_timeout_s,
            retries=self.backend_retries,
        )


S = TypeVar("S", bound=ServiceSettings)


def load_settings(service: str, cls: type[S] = ServiceSettings) -> S:  # type: ignore[assignment]
    return cls(_env_prefix=f"FACEPLANE_{service.upper()}_")
