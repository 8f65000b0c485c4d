"""Bad and awkward uploads, built from real images."""

from __future__ import annotations

import struct
import zlib

import numpy as np
from PIL import Image

from tests import images


def png_claiming_size(width: int, height: int) -> bytes:
    """A valid 1×1 PNG whose header claims another size (a decompression bomb's header, without the bomb)."""
    data = images.encode(np.zeros((1, 1, 3), np.uint8), "PNG")
    ihdr_start = 8 + 8  # signature, then length + type of the IHDR chunk
    body = struct.pack(">II", width, height) + data[ihdr_start + 8 : ihdr_start + 13]
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + body))
    return data[:ihdr_start] + body + crc + data[ihdr_start + 17 :]


def truncated_jpeg() -> bytes:
    data = images.encode(images.astronaut())
    return data[: len(data) // 3]


def exif_rotated_jpeg() -> bytes:
    """The astronaut stored rotated 90° clockwise on its side, with EXIF orientation 8 telling viewers to undo it."""
    stored = np.ascontiguousarray(np.rot90(images.astronaut(), k=-1))
    exif = Image.Exif()
    exif[0x0112] = 8
    return images.encode(stored, "JPEG", exif=exif.tobytes())
