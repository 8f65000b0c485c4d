"""Gateway configuration: one Settings object per process, from FACEPLANE_GATEWAY_* environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FACEPLANE_GATEWAY_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8080
    # host:port of each service; an empty value means the service is not deployed and its features report so.
    detector_url: str = "127.0.0.1:50051"
    embedder_url: str = ""
    emotion_url: str = ""
    agegender_url: str = ""
    attributes_url: str = ""
    generator_url: str = ""
    # Services that must be SERVING for /readyz to answer 200; the others only degrade it.
    required_services: list[str] = ["detector"]

    max_upload_bytes: int = Field(default=15 * 1024 * 1024, gt=0)
    max_pixels: int = Field(default=40_000_000, gt=0)
    # At most 256: an analysis service takes at most 256 crops per call (services/runtime/crops.py).
    max_faces: int = Field(default=100, gt=0, le=256)
    # Deadline of each downstream call, seconds.
    detect_deadline_s: float = 10.0
    analysis_deadline_s: float = 10.0
    health_deadline_s: float = 1.0
    # Circuit breaker per service: open after this many calls in a row fail UNAVAILABLE/DEADLINE_EXCEEDED, for
    # this long; then one trial call.
    breaker_failures: int = Field(default=5, ge=1)
    breaker_cooldown_s: float = Field(default=5.0, gt=0)
    # API keys (gateway/keys.py): on unless told otherwise; `make run` and the tests' stacks turn it off.
    auth: bool = True
    # Redis for the API keys, rate limits and the audit log (the galleries' Redis will do).
    redis_url: str = "redis://127.0.0.1:6379/0"
    log_level: str = "INFO"
    log_json: bool = True

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
