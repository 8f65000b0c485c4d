"""Gateway configuration: one Settings object per process, from FACEPLANE_GATEWAY_* environment variables.

Each field's description is its documentation: docs/configuration.md is written from it (`make docs`).
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FACEPLANE_GATEWAY_", extra="ignore")

    host: str = Field("127.0.0.1", description="Address the HTTP server binds to.")
    port: int = Field(8080, description="HTTP port.")
    detector_url: str = Field(
        "127.0.0.1:50051", description="host:port of the detector service (every image route needs it)."
    )
    embedder_url: str = Field(
        "", description="host:port of the embedder (embeddings, verify, galleries); empty: not deployed."
    )
    emotion_url: str = Field("", description="host:port of the emotion service; empty: not deployed.")
    agegender_url: str = Field("", description="host:port of the age/gender service; empty: not deployed.")
    attributes_url: str = Field("", description="host:port of the attributes + mask service; empty: not deployed.")
    generator_url: str = Field(
        "", description="host:port of the generator (generate, anonymize `method=generate`); empty: not deployed."
    )
    required_services: list[str] = Field(
        ["detector"],
        description="JSON list of services that must be SERVING for `/readyz` to answer 200; others only degrade it.",
    )
    max_upload_bytes: int = Field(
        15 * 1024 * 1024, gt=0, description="Bytes per uploaded image (a body may hold two, for verify); 413 above."
    )
    max_pixels: int = Field(40_000_000, gt=0, description="Pixels per image, read from its header; 413 above.")
    max_faces: int = Field(
        100,
        gt=0,
        le=256,  # an analysis service takes at most 256 crops per call (services/runtime/crops.py)
        description="Most faces analysed per image (the largest first); a request's `max_faces` may only lower it.",
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
    log_level: str = Field("INFO", description="Python log level.")
    log_json: bool = Field(True, description="Log JSON lines (false: plain text).")

    def service_urls(self) -> dict[str, str]:
        urls = {
            "detector": self.detector_url,
            "embedder": self.embedder_url,
            "emotion": self.emotion_url,
            "agegender": self.agegender_url,
            "attributes": self.attributes_url,
            "generator": self.generator_url,
        }
        return {name: url for name, url in urls.items() if url}
