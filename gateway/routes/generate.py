"""POST /v1/generate."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from gateway.generation import generate_pngs
from gateway.routes.deps import ServicesDep, SettingsDep
from gateway.schemas import ERROR_RESPONSES


class GenerateBody(BaseModel):
    count: int = Field(default=1, ge=1, le=64)
    seed: int | None = Field(default=None, ge=0, lt=2**62, description="the same seed gives the same faces")


class GeneratedFaces(BaseModel):
    images: list[str] = Field(description="base64 PNGs, 64×64")
    seed: int


router = APIRouter(prefix="/v1", tags=["generation"])


@router.post("/generate", response_model=GeneratedFaces, responses=ERROR_RESPONSES)
async def generate_route(body: GenerateBody, services: ServicesDep, settings: SettingsDep) -> Any:
    """New faces from the DCGAN generator; the answer's seed reproduces them."""
    return await generate_pngs(services, settings, body.count, body.seed)
