"""Decoding once: EXIF orientation, every colour mode to RGB, and clear errors for what is not an image."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from services.detector.decode import ImageDecodeError, decode_image
from tests import images, payloads

LIMIT = 50_000_000


def test_exif_orientation_is_applied() -> None:
    decoded = decode_image(payloads.exif_rotated_jpeg(), LIMIT)
    assert decoded.shape == images.astronaut().shape
    assert np.abs(decoded.astype(int) - images.astronaut()).mean() < 5  # back upright (JPEG noise only)


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "CMYK", "I;16", "1"])
def test_every_mode_becomes_rgb(mode: str) -> None:
    img = Image.fromarray(images.astronaut()).convert("L" if mode == "I;16" else mode)
    if mode == "I;16":
        img = Image.fromarray(np.asarray(img).astype(np.uint16) * 257)
    fmt = "JPEG" if mode == "CMYK" else "TIFF" if mode == "I;16" else "PNG"
    out = io.BytesIO()
    img.save(out, fmt)
    decoded = decode_image(out.getvalue(), LIMIT)
    assert decoded.shape == (512, 512, 3) and decoded.dtype == np.uint8
    assert decoded.std() > 10  # real content survived, not a black or clipped image


def test_animated_gif_uses_the_first_frame() -> None:
    frames = [Image.fromarray(images.astronaut()), Image.fromarray(images.no_face()[:512, :512])]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:])
    assert decode_image(out.getvalue(), LIMIT).shape == (512, 512, 3)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "empty_image"),
        (b"definitely not an image", "unsupported_image"),
        (images.encode(images.astronaut()[:64, :64], "ICO"), "unsupported_image"),  # PIL reads it; we do not
        (payloads.truncated_jpeg(), "corrupt_image"),
        (payloads.png_claiming_size(20_000, 20_000), "image_too_large"),
        (payloads.png_claiming_size(0, 5), "unsupported_image"),  # PIL refuses to identify it,
    ],
)
def test_bad_bytes_raise_a_coded_error(data: bytes, code: str) -> None:
    with pytest.raises(ImageDecodeError) as err:
        decode_image(data, LIMIT)
    assert err.value.code == code
