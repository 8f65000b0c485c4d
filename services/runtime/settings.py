"""Per-process configuration from the environment: FACEPLANE_<SERVICE>_<FIELD>, e.g. FACEPLANE_DETECTOR_PORT."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, TypeVar

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.runtime.backends import BackendKind, BackendOptions
from services.runtime.modelrepo import preferred_model

REPO_ROOT = Path(__file__).resolve().parents[2]


class ServiceSettings(BaseSettings):
    """What every service shares; each service's class adds its own fields. A field's description is its
    documentation: docs/configuration.md is written from it (`make docs`)."""

    model_config = SettingsConfigDict(extra="ignore")

    host: str = Field("127.0.0.1", description="Address the gRPC server binds to.")
    port: int = Field(50051, description="gRPC port.")
    metrics_host: str = Field("127.0.0.1", description="Address of the Prometheus metrics endpoint.")
    metrics_port: int = Field(0, description="Port of the Prometheus metrics endpoint; 0 turns it off.")
    model_repo: Path = Field(REPO_ROOT / "model-repo", description="The model repository (`model-repo/`).")
    backend: BackendKind = Field(
        "onnx",
        description="Where inference runs: `onnx` (in-process), `torch` (in-process, CUDA when present), "
        "`torchserve`, `tfserving` or `kserve_v2` (a model server at `BACKEND_URL`); see backends.md.",
    )
    backend_url: str = Field("", description="host:port of the model server, for the model-server backends.")
    backend_device: str = Field(
        "auto", description="The torch backend's device: `auto` (CUDA when present), `cpu`, `cuda`, `cuda:N`."
    )
    backend_fp16: bool = Field(True, description="The torch backend runs fp16 autocast on CUDA.")
    backend_timeout_s: float = Field(10.0, description="Deadline of each model-server call, seconds.")
    backend_retries: int = Field(2, description="Retries of a model-server call answered UNAVAILABLE, with backoff.")
    int8: bool = Field(
        True,
        description="Run a model's int8 variant (`model-repo/<model>_int8/`, ONNX Runtime static quantisation) where "
        "there is one and the backend is `onnx`: 1.7–3× faster on the CPU, within 0.3 points of the float model on "
        "its dev figure (docs/models.md). The embedder always runs its configured model (its galleries are tied to "
        "it). false: the float models.",
    )
    intra_op_threads: int = Field(
        1,
        description="Threads ONNX Runtime may use per model call; one is fastest for our small models "
        "(cores are better spent on concurrent calls: `INFERENCE_WORKERS`).",
    )
    batching: bool = Field(
        True,
        description="Dynamic batching: crops of concurrent requests share model calls, sized per model by "
        "`[batching]` in its config.toml.",
    )
    inference_workers: int = Field(0, description="Model calls running at once (threads); 0: one per CPU core.")
    log_level: str = Field("INFO", description="Python log level.")
    log_json: bool = Field(True, description="Log JSON lines (false: plain text).")
    shutdown_grace_s: float = Field(5.0, description="Seconds in-flight calls get to finish after SIGTERM.")
    max_message_bytes: int = Field(64 * 1024 * 1024, description="Largest gRPC message received or sent.")
    max_connection_age_s: float = Field(
        300.0,
        gt=0,
        description="Seconds a client connection may live; then the client reconnects and re-resolves the "
        "service's name (finds new replicas). Calls in flight finish.",
    )
    probe_interval_s: float = Field(
        2.0, description="Seconds between checks of what the service depends on (e.g. the embedder's Redis)."
    )
    auth_token: SecretStr = Field(
        SecretStr(""),
        description="Shared token every call must carry as `authorization: Bearer <token>` gRPC metadata (the "
        "gateway's `SERVICE_TOKEN`); a call without it is refused UNAUTHENTICATED. Health and reflection stay "
        "open. Empty: calls need none (`make run` and the chart set one).",
    )
    warm_up_timeout_s: float = Field(
        30.0,
        gt=0,
        description="Seconds the models' warm-up may take before the service reports SERVING anyway "
        "(a slow or absent model server).",
    )
    tracing: bool = Field(
        False,
        description="Export OpenTelemetry traces: a span per call (continuing the gateway's trace from the W3C "
        "`traceparent` in its metadata), and spans for decoding, detection, batch waits, model calls and gallery "
        "operations. Off: no spans, no exporter thread.",
    )
    otlp_endpoint: str = Field(
        "",
        description="The OTLP/gRPC collector traces go to, e.g. `http://otel-collector:4317`; empty: "
        "`OTEL_EXPORTER_OTLP_ENDPOINT`, else `http://localhost:4317`.",
    )
    trace_sample_ratio: float = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="Share of new traces recorded; a call that comes with a trace follows its caller's decision.",
    )
    trace_exporter: Literal["otlp", "memory"] = Field(
        "otlp", description="`otlp` (to `OTLP_ENDPOINT`), or `memory`: kept in the process, for the tests."
    )

    def model_folder(self, name: str) -> str:
        """The model folder to load for the model setting `name`: its int8 variant where `INT8` allows."""
        return preferred_model(self.model_repo, name, self.backend, self.int8)

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
