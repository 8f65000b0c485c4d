"""Shared route dependencies as Annotated aliases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Annotated

from fastapi import Depends, Query, Request

from gateway.admission import PixelBudget
from gateway.analysis import DetectOptions
from gateway.clients import Services
from gateway.images import inspect_header, read_image_bytes, read_images
from gateway.settings import Settings


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_services(request: Request) -> Services:
    return request.app.state.services


SettingsDep = Annotated[Settings, Depends(get_settings)]
ServicesDep = Annotated[Services, Depends(get_services)]


def client_of(request: Request) -> str:
    """Whom a request's cost is counted against: its API key, or its address when keys are off."""
    key = getattr(request.state, "api_key", None)
    if key is not None and key.key_id:
        return f"key:{key.key_id}"
    return f"addr:{request.client.host if request.client else ''}"


async def checked_image(request: Request, settings: SettingsDep) -> AsyncIterator[bytes]:
    """The upload, checked from its header, admitted against its client's pixel budget for the whole request."""
    data = await read_image_bytes(request, settings.max_upload_bytes)
    header = inspect_header(data, settings.max_pixels)
    async with admitted(request, header.width * header.height):
        yield data


def admitted(request: Request, pixels: int) -> AbstractAsyncContextManager[None]:
    budget: PixelBudget = request.app.state.pixel_budget
    return budget.admit(client_of(request), pixels)


ImageDep = Annotated[bytes, Depends(checked_image)]


async def checked_images(request: Request, settings: Settings, fields: tuple[str, ...]) -> tuple[dict[str, bytes], int]:
    """The named images of a multipart or JSON body, each through the same cheap checks as `checked_image`, and
    their pixels (admit them with `admitted`)."""
    images = await read_images(request, fields, settings.max_upload_bytes)
    headers = [inspect_header(data, settings.max_pixels) for data in images]
    return dict(zip(fields, images, strict=True)), sum(h.width * h.height for h in headers)


def detect_options(
    min_confidence: Annotated[
        float | None,
        Query(
            ge=0.0,
            le=1.0,
            description="drop faces below this confidence (default: the detector model's, 0.7 for YuNet)",
        ),
    ] = None,
    max_faces: Annotated[int, Query(ge=1, le=1000, description="at most this many faces, largest first")] = 100,
) -> DetectOptions:
    return DetectOptions(min_confidence=min_confidence, max_faces=max_faces)


DetectOptionsDep = Annotated[DetectOptions, Depends(detect_options)]


def image_body(
    *fields: str, required: tuple[str, ...] | None = None, text_fields: dict[str, str] | None = None
) -> dict:
    """Both ways of sending images, for the OpenAPI document (the body itself is read by the dependencies above):
    `fields` are images (all required unless `required` names some), `text_fields` plain strings beside them,
    each with its pattern."""

    def schema(fmt: str, description: str) -> dict:
        prop = {"type": "string", "format": fmt, "minLength": 1, "description": description}
        properties: dict = dict.fromkeys(fields, prop)
        for name, pattern in (text_fields or {}).items():
            properties[name] = {"type": "string", "pattern": pattern}
        return {"type": "object", "required": list(fields if required is None else required), "properties": properties}

    content = {"multipart/form-data": {"schema": schema("binary", "an image file")}}
    content["application/json"] = {"schema": schema("byte", "base64 image data (a data: URL is accepted)")}
    return {"requestBody": {"required": True, "content": content}}


IMAGE_BODY = image_body("image")
