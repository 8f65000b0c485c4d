"""Generated faces from the generator service: as PNGs for /v1/generate, as pixels for anonymisation."""

from __future__ import annotations

import base64
import io
from typing import Any

import grpc
import numpy as np
from faceplane.v1 import generator_pb2
from PIL import Image

from gateway.clients import Services, to_api_error
from gateway.settings import Settings


async def _generate(
    services: Services, settings: Settings, count: int, seed: int | None
) -> generator_pb2.GenerateResponse:
    stub = services.require("generator").stub
    try:
        return await stub.Generate(
            generator_pb2.GenerateRequest(count=count, seed=seed), timeout=settings.analysis_deadline_s
        )
    except grpc.aio.AioRpcError as exc:
        raise to_api_error("generator", exc) from exc


def _pixels(face: Any) -> np.ndarray:
    return np.frombuffer(face.pixels, dtype=np.uint8).reshape(face.height, face.width, face.channels)


async def generate_pngs(services: Services, settings: Settings, count: int, seed: int | None) -> dict[str, Any]:
    reply = await _generate(services, settings, count, seed)
    images = []
    for face in reply.images:
        out = io.BytesIO()
        Image.fromarray(_pixels(face)).save(out, "PNG")
        images.append(base64.b64encode(out.getvalue()).decode())
    return {"images": images, "seed": reply.seed}


async def generated_faces(services: Services, settings: Settings, count: int) -> list[np.ndarray]:
    """`count` new faces, asked for in calls of at most 64 (the generator's limit)."""
    faces: list[np.ndarray] = []
    while len(faces) < count:
        reply = await _generate(services, settings, min(64, count - len(faces)), None)
        faces += [_pixels(face) for face in reply.images]
    return faces
