"""POST /v1/anonymize: every detected face made unrecognisable, in the image's own format and orientation.

The detector finds the faces (decoding once for that); blending needs the pixels here too, so the gateway decodes
the image a second time — the one route that does.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageOps

from gateway.analysis import DetectOptions, detect
from gateway.clients import Services
from gateway.errors import ApiError
from gateway.images import ImageHeader
from gateway.settings import Settings

# The blurred area reaches this far beyond the detector's box (hair line, chin, ears), and fades out at its edge.
MARGIN = 0.25


@dataclass(frozen=True)
class Anonymized:
    data: bytes
    media_type: str
    faces: int


def _blur_face(image: np.ndarray, box: tuple[float, float, float, float]) -> None:
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


async def anonymize(
    services: Services, settings: Settings, data: bytes, header: ImageHeader, method: str, options: DetectOptions
) -> Anonymized:
    if method == "generate":
        raise ApiError(503, "generator_not_configured", "face generation is not deployed yet; ask for method=blur")
    detected = await detect(services, settings, data, options, [])
    image = np.array(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    for face in detected.faces:
        _blur_face(image, (face.box.x, face.box.y, face.box.width, face.box.height))
    encoded, media_type = _encode(image, header)
    return Anonymized(encoded, media_type, len(detected.faces))
