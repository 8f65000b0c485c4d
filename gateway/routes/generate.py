"""POST /v1/generate."""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field, field_validator

from gateway.generation import generate_pngs
from gateway.routes.deps import ServicesDep, SettingsDep
from gateway.schemas import ERROR_RESPONSES

# Seeds are JSON numbers: below 2^53 every client reads them exactly (a browser's numbers are doubles), and a
# JSON Schema validator compares the bound exactly too.
SEED_BITS = 53


class GenerateBody(BaseModel):
    # Strict integers: pydantic's lax mode would take `true` and `"3"`, which the schema refuses.
    count: int = Field(default=1, ge=1, le=64, strict=True)
    seed: int | None = Field(
        default=None, ge=0, lt=2**SEED_BITS, strict=True, description="the same seed gives the same faces"
    )

    @field_validator("count", "seed", mode="before")
    @classmethod
    def _integral(cls, value: object) -> object:
        """`3.0` is an integer to JSON Schema: taken as 3."""
        return int(value) if isinstance(value, float) and value.is_integer() else value


class GeneratedFaces(BaseModel):
    images: list[str] = Field(description="base64 PNGs, 64×64")
    seed: int = Field(ge=0, lt=2**SEED_BITS)


router = APIRouter(prefix="/v1", tags=["generation"])


@router.post("/generate", response_model=GeneratedFaces, responses=ERROR_RESPONSES)
async def generate_route(body: GenerateBody, services: ServicesDep, settings: SettingsDep) -> Any:
    """New faces from the DCGAN generator; the answer's seed reproduces them."""
    seed = body.seed if body.seed is not None else secrets.randbits(SEED_BITS)
    return await generate_pngs(services, settings, body.count, seed)
