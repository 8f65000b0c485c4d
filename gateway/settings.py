"""Gateway configuration: one Settings object per process, from FACEPLANE_GATEWAY_* environment variables.

Each field's description is its documentation: docs/configuration.md is written from it (`make docs`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.catalogue import BY_NAME

DEFAULT_DETECTOR = "127.0.0.1:50051"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FACEPLANE_GATEWAY_", env_nested_delimiter="__", extra="ignore")

    host: str = Field("127.0.0.1", description="Address the HTTP server binds to.")
    port: int = Field(8080, description="HTTP port.")
    allowed_hosts: list[str] = Field(
        ["localhost", "127.0.0.1", "::1"],
        description="JSON list of the names clients reach the gateway by: a request whose `Host` names another "
        "gets 400 `invalid_host` (DNS rebinding); the bind address `HOST` is added unless it is a wildcard. `*` "
        "takes any `Host` (the chart and compose: the Ingress or the operator decides). Either way a write or a "
        "video stream whose `Origin` is neither the request's own host nor listed here gets 403 `cross_origin`.",
    )
    services: dict[str, str] = Field(
        {"detector": DEFAULT_DETECTOR},
        description="host:port of each deployed service, by its name in the service catalogue "
        f"({', '.join(BY_NAME)}; services/catalogue.py), one variable each: `FACEPLANE_GATEWAY_SERVICES__EMOTION"
        "=host:port` (or all as one JSON object in `FACEPLANE_GATEWAY_SERVICES`). A service not named is not "
        f"deployed; the detector, which every image route needs, defaults to {DEFAULT_DETECTOR}.",
    )
    required_services: list[str] = Field(
        ["detector"],
        description="JSON list of services that must be SERVING for `/readyz` to answer 200; others only degrade it.",
    )
    max_upload_bytes: int = Field(
        15 * 1024 * 1024, gt=0, description="Bytes per uploaded image (a body may hold two, for verify); 413 above."
    )
    max_pixels: int = Field(40_000_000, gt=0, description="Pixels per image, read from its header; 413 above.")
    client_pixel_budget: int = Field(
        20_000_000,
        gt=0,
        description="Pixels of one client's images (per API key, or per address without keys) in flight through "
        "this gateway at once; more wait (`CLIENT_PIXEL_WAIT_S`), then 429 `too_many_pixels`. A client with "
        "nothing in flight is always admitted.",
    )
    client_pixel_wait_s: float = Field(
        10.0, gt=0, description="Seconds a request over its client's pixel budget waits before it is refused."
    )
    max_faces: int = Field(
        100,
        gt=0,
        le=256,  # an analysis service takes at most 256 crops per call (services/runtime/crops.py)
        description="Most faces analysed per image (the largest first); a request's `max_faces` may only lower it.",
    )
    cluster_max_images: int = Field(
        500,
        ge=1,
        description="Most images one `POST /v1/cluster` takes (413 `too_many_images` above); each within "
        "`MAX_UPLOAD_BYTES` and `MAX_PIXELS`. That route's body cap is this many times `MAX_UPLOAD_BYTES` (plus "
        "the multipart framing), every other route's stays at two images.",
    )
    cluster_max_faces: int = Field(
        5000,
        ge=2,
        description="Most faces one `POST /v1/cluster` clusters, all its images together (422 `too_many_faces` "
        "above): the clustering's time and memory grow with the square of the faces.",
    )
    cluster_concurrency: int = Field(
        4,
        ge=1,
        description="Images of one `POST /v1/cluster` in the detector and the embedder at once (each image: one "
        "Detect, then one Embed of all its faces, which the embedder batches with the others in flight).",
    )
    cluster_threshold: float = Field(
        0.916,
        gt=0.0,
        le=1.0,
        description="Default cosine similarity every two faces of a cluster reach (`POST /v1/cluster`): the "
        "embedding model's verification threshold (dlib_resnet: 0.916, model-repo/dlib_resnet/config.toml); "
        "change it with the embedder's model.",
    )
    detect_deadline_s: float = Field(10.0, description="Deadline of each detector call, seconds.")
    analysis_deadline_s: float = Field(
        10.0, description="Deadline of each call to an analysis service or the embedder, seconds."
    )
    health_deadline_s: float = Field(1.0, description="Deadline of each health check behind `/readyz`, seconds.")
    breaker_failures: int = Field(
        5,
        ge=1,
        description="Calls to one service failing UNAVAILABLE or DEADLINE_EXCEEDED in a row that open its breaker.",
    )
    breaker_cooldown_s: float = Field(
        5.0, gt=0, description="Seconds an open breaker fails calls at once, before one trial call."
    )
    auth: bool = Field(True, description="Require an API key on every `/v1/…` route (`make run` sets false).")
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        description="Redis holding the API keys, rate limits and the audit log (the galleries' Redis will do).",
    )
    key_store_pool_size: int = Field(
        32,
        ge=1,
        description="Most connections to the key store (`REDIS_URL`) the gateway opens; a request finding them "
        "all busy waits for one (a request costs the store two short round trips).",
    )
    key_store_pool_wait_s: float = Field(
        5.0,
        gt=0,
        description="Seconds a request waits for a free key-store connection before it is refused with 503 "
        "`auth_unavailable`.",
    )
    service_token: SecretStr = Field(
        SecretStr(""),
        description="Token sent with every call to a service (`authorization: Bearer …` gRPC metadata); it must "
        "be the services' `AUTH_TOKEN`. Empty: none sent.",
    )
    log_level: str = Field("INFO", description="Python log level.")
    log_json: bool = Field(True, description="Log JSON lines (false: plain text).")
    tracing: bool = Field(
        False,
        description="Export OpenTelemetry traces: a span per `/v1/…` request, its upload checks and fan-out, and "
        "one per gRPC call, whose W3C `traceparent` the services continue. Off: no spans, no exporter thread, "
        "nothing sent.",
    )
    otlp_endpoint: str = Field(
        "",
        description="The OTLP/gRPC collector traces go to, e.g. `http://otel-collector:4317`; empty: "
        "`OTEL_EXPORTER_OTLP_ENDPOINT`, else `http://localhost:4317`.",
    )
    trace_sample_ratio: float = Field(
        0.1, ge=0.0, le=1.0, description="Share of requests traced (each through every hop, or not at all)."
    )
    trace_exporter: Literal["otlp", "memory"] = Field(
        "otlp", description="`otlp` (to `OTLP_ENDPOINT`), or `memory`: kept in the process, for the tests."
    )

    video_max_bytes: int = Field(
        100 * 1024 * 1024,
        gt=0,
        description="Bytes of one video uploaded to `POST /v1/videos` (413 `video_too_large` above; that route's "
        "body cap is this plus the multipart framing). The upload waits in Redis for a worker, so this also bounds "
        "what each queued job holds there.",
    )
    video_max_duration_s: float = Field(
        600.0, gt=0, description="Seconds of one uploaded video, read from its container (413 `video_too_long`)."
    )
    video_result_ttl_s: int = Field(
        86_400,
        ge=60,
        description="Seconds a video job (its upload, status and result) is kept in Redis after it was submitted; "
        "then `GET /v1/videos/{job_id}` answers 404.",
    )
    video_claim_idle_s: float = Field(
        60.0,
        gt=0,
        description="Seconds a video job may sit with a worker without being acknowledged before another worker "
        "takes it over (XAUTOCLAIM): a worker that was killed mid-job loses it after this long. Keep it above the "
        "longest job a worker runs.",
    )
    video_max_attempts: int = Field(
        3, ge=1, description="Workers that may take one video job; after that many failed tries it ends `failed`."
    )
    video_worker_name: str = Field(
        "",
        description="The video worker's consumer name in the job stream's group; empty: the host name and the "
        "process id (unique per process, as each must be).",
    )

    @field_validator("services")
    @classmethod
    def _catalogued(cls, urls: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(urls) - BY_NAME.keys())
        if unknown:
            raise ValueError(f"no service {unknown} in the catalogue; known: {', '.join(BY_NAME)}")
        return {"detector": DEFAULT_DETECTOR, **urls}

    def service_urls(self) -> dict[str, str]:
        """The deployed services' URLs (an empty URL: not deployed)."""
        return {name: url for name, url in self.services.items() if url}
