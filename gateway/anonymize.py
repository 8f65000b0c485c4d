"""POST /v1/anonymize: every detected face made unrecognisable, in the image's own format and orientation.

The detector finds the faces (decoding once for that); blending needs the pixels here too, so the gateway decodes
the image a second time — the one route that does. Decoding, blending and encoding a photo of the pixel limit take
a second or more of CPU: they run on threads of their own, never on the event loop every request shares.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageOps

from gateway.analysis import DetectOptions, detect
from gateway.clients import Services
from gateway.error_codes import ServiceCode, service_code
from gateway.errors import ApiError
from gateway.generation import generated_faces
from gateway.images import ImageHeader
from gateway.settings import Settings

# The blurred area reaches this far beyond the detector's box (hair line, chin, ears), and fades out at its edge.
MARGIN = 0.25
# Images being decoded, blended and encoded at once; each holds its pixels (40 MP: 120 MB, several times that while
# blending), so more wait their turn rather than add up.
_RENDERERS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="anonymize")
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Anonymized:
    data: bytes
    media_type: str
    faces: int


def _blur_face(image: np.ndarray, box: Box) -> None:
    x, y, w, h = box
    cx, cy = x + w / 2, y + h / 2
    half_w, half_h = w * (0.5 + MARGIN), h * (0.5 + MARGIN)
    x0, y0 = max(0, int(cx - half_w)), max(0, int(cy - half_h))
    x1, y1 = min(image.shape[1], int(cx + half_w) + 1), min(image.shape[0], int(cy + half_h) + 1)
    if x1 <= x0 or y1 <= y0:
        return
    region = image[y0:y1, x0:x1].astype(np.float32)
    # Strong enough that no identity survives: sigma a sixth of the face, on top of a coarse pixelation.
    small = cv2.resize(region, (8, 8), interpolation=cv2.INTER_AREA)
    coarse = cv2.resize(small, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    sigma = max(2.0, max(w, h) / 6)
    blurred = cv2.GaussianBlur(coarse, (0, 0), sigma)
    mask = np.zeros((y1 - y0, x1 - x0), np.float32)
    cv2.ellipse(mask, (int(cx - x0), int(cy - y0)), (int(half_w), int(half_h)), 0, 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), max(1.0, max(w, h) / 20))[..., None]
    image[y0:y1, x0:x1] = (blurred * mask + region * (1 - mask)).clip(0, 255).astype(np.uint8)


def _encode(image: np.ndarray, header: ImageHeader) -> tuple[bytes, str]:
    out = io.BytesIO()
    if header.format == "JPEG":
        Image.fromarray(image).save(out, "JPEG", quality=92)
        return out.getvalue(), "image/jpeg"
    Image.fromarray(image).save(out, "PNG")
    return out.getvalue(), "image/png"


def _paste_face(image: np.ndarray, box: Box, generated: np.ndarray) -> None:
    """Blend a generated face over the box: the generator's crops have the standard template with padding 0.25,
    so their face fills the middle two thirds; colours are matched to the face replaced."""
    x, y, w, h = box
    side = max(w, h) * (1 + 2 * MARGIN)
    cx, cy = x + w / 2, y + h / 2
    ox, oy = int(cx - side / 2), int(cy - side / 2)
    x0, y0 = max(0, ox), max(0, oy)
    x1, y1 = min(image.shape[1], ox + round(side)), min(image.shape[0], oy + round(side))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return
    n = generated.shape[0]
    inner = generated[n // 6 : n - n // 6, n // 6 : n - n // 6]  # the face, without the template's padding
    full = cv2.resize(inner, (round(side), round(side)), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    patch = full[y0 - oy : y1 - oy, x0 - ox : x1 - ox]
    region = image[y0:y1, x0:x1].astype(np.float32)
    patch = (patch - patch.mean((0, 1))) / (patch.std((0, 1)) + 1e-3) * region.std((0, 1)) + region.mean((0, 1))
    mask = np.zeros(region.shape[:2], np.float32)
    cv2.ellipse(mask, (int(cx - x0), int(cy - y0)), (int(w * 0.55), int(h * 0.6)), 0, 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), max(1.0, max(w, h) / 15))[..., None]
    image[y0:y1, x0:x1] = (patch * mask + region * (1 - mask)).clip(0, 255).astype(np.uint8)


async def anonymize(
    services: Services, settings: Settings, data: bytes, header: ImageHeader, method: str, options: DetectOptions
) -> Anonymized:
    if method == "generate" and services.get("generator") is None:
        message = "the generator service is not deployed; ask for method=blur"
        raise ApiError(service_code("generator", ServiceCode.NOT_CONFIGURED), message)
    detected = await detect(services, settings, data, options, [])
    boxes = [(f.box.x, f.box.y, f.box.width, f.box.height) for f in detected.faces]
    generated = await generated_faces(services, settings, len(boxes)) if method == "generate" and boxes else []
    loop = asyncio.get_running_loop()
    encoded, media_type = await loop.run_in_executor(_RENDERERS, _render, data, header, boxes, generated)
    return Anonymized(encoded, media_type, len(detected.faces))


def _render(
    data: bytes, header: ImageHeader, boxes: Sequence[Box], generated: Sequence[np.ndarray]
) -> tuple[bytes, str]:
    """The image decoded, every box replaced by its generated face (or blurred, without any), encoded again."""
    image = np.array(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    if generated:
        for box, face in zip(boxes, generated, strict=True):
            _paste_face(image, box, face)
    else:
        for box in boxes:
            _blur_face(image, box)
    return _encode(image, header)
