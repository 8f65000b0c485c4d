"""The cheap checks an upload passes before any service sees it: where the bytes are, what the header says.

Nothing here decodes pixels: the detector decodes each image exactly once.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
import warnings
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from PIL import Image, UnidentifiedImageError
from starlette.datastructures import FormData, UploadFile
from starlette.requests import ClientDisconnect

from gateway.error_codes import ErrorCode
from gateway.errors import ApiError
from gateway.limits import BodyTooLarge
from gateway.tracing import span

Image.MAX_IMAGE_PIXELS = None  # we enforce our own limit from the header, below
SUPPORTED_FORMATS = {"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"}
EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class ImageHeader:
    format: str
    width: int  # as displayed, after EXIF orientation
    height: int


def _content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def _form(request: Request) -> FormData:
    """The multipart form, parsed once per request (Starlette keeps it for later readers)."""
    try:
        return await request.form(max_files=4, max_fields=20)
    except (BodyTooLarge, ClientDisconnect):
        raise
    except Exception as exc:  # the multipart parser raises several types for malformed bodies
        raise ApiError(ErrorCode.INVALID_MULTIPART, f"the multipart body could not be parsed: {exc}") from exc


async def _json(request: Request) -> dict[str, Any]:
    """The JSON object of the body, decoded once per request."""
    cached = getattr(request.state, "json_object", None)
    if cached is not None:
        return cached
    try:
        payload = json.loads(await request.body())
    # ValueError: malformed JSON, bytes that are not UTF-8, an integer over Python's 4,300-digit limit.
    except (ValueError, RecursionError) as exc:
        raise ApiError(ErrorCode.INVALID_JSON, f"the body is not valid JSON: {exc}") from exc
    request.state.json_object = payload if isinstance(payload, dict) else {}
    return request.state.json_object


async def read_images(request: Request, fields: tuple[str, ...], max_bytes: int) -> list[bytes]:
    """The images named `fields` from multipart file fields or a JSON body of base64 strings; a route taking one
    image also accepts it as a raw image/* body."""
    with span("read upload", {"faceplane.upload.fields": len(fields)}) as reading:  # a span when tracing is on
        images = await _read_images(request, fields, max_bytes)
        reading.set_attribute("faceplane.upload.bytes", sum(len(data) for data in images))
        return images


async def _read_images(request: Request, fields: tuple[str, ...], max_bytes: int) -> list[bytes]:
    content_type = _content_type(request)
    if content_type == "multipart/form-data":
        form = await _form(request)
        images = [await _file(form, name) for name in fields]
    elif content_type == "application/json":
        payload = await _json(request)
        images = [_base64(payload, name) for name in fields]
    elif content_type.startswith("image/") and len(fields) == 1:
        images = [await request.body()]
    else:
        names = " and ".join(f'"{f}"' for f in fields)
        raw = ", or as a raw image/* body" if len(fields) == 1 else ""
        raise ApiError(
            ErrorCode.UNSUPPORTED_MEDIA_TYPE,
            f"send {names} as multipart/form-data file fields or as base64 strings in a JSON object{raw}",
        )
    for field, data in zip(fields, images, strict=True):
        where = "the image" if len(fields) == 1 else f"'{field}'"
        if not data:
            raise ApiError(ErrorCode.EMPTY_IMAGE, f"{where} is empty")
        if len(data) > max_bytes:
            raise ApiError(
                ErrorCode.IMAGE_TOO_LARGE, f"{where} is {len(data)} bytes, more than the limit of {max_bytes}"
            )
    return images


async def read_text_fields(request: Request, names: tuple[str, ...], pattern: str) -> dict[str, str]:
    """Plain text fields sent beside images (multipart form fields or JSON strings); absent ones are left out, and
    one that is not a string matching `pattern` is refused, as the OpenAPI document says."""
    content_type = _content_type(request)
    if content_type == "multipart/form-data":
        form = await _form(request)
        values = {name: form.get(name) for name in names}
    elif content_type == "application/json":
        payload = await _json(request)
        values = {name: payload.get(name) for name in names}
    else:
        return {}
    out = {name: value for name, value in values.items() if value is not None}
    for name, value in out.items():
        if not isinstance(value, str) or not re.fullmatch(pattern, value):
            raise ApiError(ErrorCode.INVALID_REQUEST, f"the field '{name}' must be a string matching {pattern}")
    return out


async def read_image_bytes(request: Request, max_bytes: int) -> bytes:
    """The image from a multipart field `image`, a JSON {"image": base64} body, or a raw image/* body."""
    return (await read_images(request, ("image",), max_bytes))[0]


async def _file(form: FormData, name: str) -> bytes:
    field = form.get(name)
    if field is None:
        raise ApiError(ErrorCode.MISSING_IMAGE, f"the multipart body has no field named '{name}'")
    if not isinstance(field, UploadFile):
        raise ApiError(ErrorCode.MISSING_IMAGE, f"the field '{name}' must be a file upload")
    return await field.read()


def _base64(payload: dict[str, Any], name: str) -> bytes:
    value = payload.get(name)
    if not isinstance(value, str):
        raise ApiError(
            ErrorCode.MISSING_IMAGE, f"the JSON body needs a string field '{name}' holding base64 image data"
        )
    if value.startswith("data:") and "," in value:  # a data URL, as browsers produce
        value = value.split(",", 1)[1]
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError("invalid_base64", f"the field '{name}' is not valid base64") from exc


def inspect_header(data: bytes, max_pixels: int) -> ImageHeader:
    """Format and displayed size from the header alone; rejects unknown formats and oversized images."""
    with span("check image header", {"faceplane.image.bytes": len(data)}) as checking:
        header = _read_header(data, max_pixels)
        size = {"faceplane.image.width": header.width, "faceplane.image.height": header.height}
        checking.set_attributes({"faceplane.image.format": header.format, **size})
        return header


def _read_header(data: bytes, max_pixels: int) -> ImageHeader:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = Image.open(io.BytesIO(data))
            fmt = img.format or ""
            width, height = img.size
            if fmt not in SUPPORTED_FORMATS:
                raise ApiError(ErrorCode.UNSUPPORTED_IMAGE, f"{fmt or 'this'} images are not supported")
            if width < 1 or height < 1:
                raise ApiError(ErrorCode.INVALID_IMAGE, f"the image has no pixels ({width}×{height})")
            if width * height > max_pixels:
                raise ApiError(
                    ErrorCode.IMAGE_TOO_LARGE,
                    f"the image has {width * height} pixels, more than the limit of {max_pixels}",
                )
            # Only where EXIF sits in the header: PIL's PNG getexif() decodes the whole image to look for it.
            orientation = img.getexif().get(EXIF_ORIENTATION, 1) if fmt in ("JPEG", "WEBP", "TIFF") else 1
    except ApiError:
        raise
    except UnidentifiedImageError as exc:
        raise ApiError(ErrorCode.UNSUPPORTED_IMAGE, "the data is not an image in a supported format") from exc
    except Exception as exc:  # a corrupt header can raise from deep inside PIL's plugins
        raise ApiError(ErrorCode.CORRUPT_IMAGE, f"the image header could not be read: {exc}") from exc
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return ImageHeader(fmt, width, height)
