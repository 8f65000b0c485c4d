"""Shared route dependencies as Annotated aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request

from gateway.analysis import DetectOptions
from gateway.clients import Services
from gateway.images import inspect_header, read_image_bytes
from gateway.settings import Settings


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_services(request: Request) -> Services:
    return request.app.state.services


SettingsDep = Annotated[Settings, Depends(get_settings)]
ServicesDep = Annotated[Services, Depends(get_services)]


async def checked_image(request: Request, settings: SettingsDep) -> bytes:
    data = await read_image_bytes(request, settings.max_upload_bytes)
    inspect_header(data, settings.max_pixels)
    return data


ImageDep = Annotated[bytes, Depends(checked_image)]


def detect_options(
    min_confidence: Annotated[float, Query(ge=0.0, le=1.0, description="drop faces below this confidence")] = 0.0,
    max_faces: Annotated[int, Query(ge=1, le=1000, description="at most this many faces, largest first")] = 100,
) -> DetectOptions:
    return DetectOptions(min_confidence=min_confidence, max_faces=max_faces)


DetectOptionsDep = Annotated[DetectOptions, Depends(detect_options)]

# Both ways of sending an image, for the OpenAPI document (the body is read by `checked_image`).
IMAGE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {"image": {"type": "string", "format": "binary"}},
                }
            },
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {"image": {"type": "string", "format": "byte", "description": "base64"}},
                }
            },
        },
    }
}
