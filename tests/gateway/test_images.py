"""The gateway's cheap header checks, without any server."""

from __future__ import annotations

import pytest

from gateway.errors import ApiError
from gateway.images import inspect_header
from tests import images, payloads


def test_header_gives_format_and_displayed_size() -> None:
    header = inspect_header(images.encode(images.astronaut()[:, :300]), 10_000_000)
    assert (header.format, header.width, header.height) == ("JPEG", 300, 512)


def test_exif_rotation_swaps_the_displayed_size() -> None:
    stored = images.encode(images.astronaut()[:, :300])
    assert inspect_header(stored, 10_000_000).width == 300
    header = inspect_header(payloads.exif_rotated_jpeg(), 10_000_000)
    assert (header.width, header.height) == (512, 512)


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"GIF89a-not-really", 415, "unsupported_image"),
        (b"hello", 415, "unsupported_image"),
        (payloads.png_claiming_size(20_000, 20_000), 413, "image_too_large"),
        (images.encode(images.astronaut(), "PDF"), 415, "unsupported_image"),
    ],
)
def test_bad_headers(data: bytes, status: int, code: str) -> None:
    with pytest.raises(ApiError) as err:
        inspect_header(data, 10_000_000)
    assert (err.value.status, err.value.code) == (status, code)
