"""Decode an uploaded image exactly once: EXIF orientation applied, any mode brought to 8-bit RGB."""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from services.runtime.error_codes import ErrorCode
from services.runtime.errors import ServiceError

# Our own pixel limit is checked from the header before decoding; PIL's warning-then-error bomb check is redundant.
Image.MAX_IMAGE_PIXELS = None
# Photo formats only: PIL would otherwise also open EPS (through Ghostscript), PSD, ICO and more.
SUPPORTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")


class ImageDecodeError(ServiceError, ValueError):
    """The bytes are not an image we can decode: answered INVALID_ARGUMENT, `code` saying why."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message, code=code)


def _to_rgb(img: Image.Image) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # 16/32-bit grey: scale to 8 bits instead of letting convert() clip everything above 255.
        grey = np.asarray(img, dtype=np.float32)
        peak = 65535.0 if img.mode.startswith("I;16") else max(float(grey.max()), 1.0)
        grey = np.clip(grey / peak * 255.0, 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    return np.asarray(img.convert("RGB"))


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """RGB uint8 (H, W, 3) in display orientation; the first frame of an animation."""
    if not data:
        raise ImageDecodeError(ErrorCode.EMPTY_IMAGE, "the image is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = Image.open(io.BytesIO(data), formats=SUPPORTED_FORMATS)
            width, height = img.size
            if width < 1 or height < 1:
                raise ImageDecodeError(ErrorCode.INVALID_IMAGE, f"image has no pixels ({width}×{height})")
            if width * height > max_pixels:
                raise ImageDecodeError(
                    ErrorCode.IMAGE_TOO_LARGE, f"image has {width * height} pixels, more than the limit of {max_pixels}"
                )
            img.load()
            img = ImageOps.exif_transpose(img)
            return np.ascontiguousarray(_to_rgb(img))
    except ImageDecodeError:
        raise
    except UnidentifiedImageError as exc:
        raise ImageDecodeError(ErrorCode.UNSUPPORTED_IMAGE, "the data is not an image in a supported format") from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, MemoryError) as exc:
        # Truncated or corrupt streams surface from PIL's decoders as any of these.
        raise ImageDecodeError(ErrorCode.CORRUPT_IMAGE, f"the image could not be decoded: {exc}") from exc
