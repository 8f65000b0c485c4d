"""Bad input, generated: schemathesis against our own OpenAPI schema on the live gateway, and byte-level fuzzing
of the image path (header check in the gateway, decoding in the detector). Whatever a client sends gets a 2xx or
a clear 4xx `{"error": {"code", "message"}}` — never a 5xx, never a crash. Derandomised, so every run is the same.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from gateway.errors import ApiError
from gateway.images import inspect_header
from services.detector.decode import ImageDecodeError, decode_image
from tests import images

pytestmark = pytest.mark.slow
CASES: Counter[str] = Counter()  # how many generated inputs each test sent, printed after the module
MAX_PIXELS = 30_000_000


@pytest.fixture(scope="module", autouse=True)
def report_case_counts() -> Iterator[None]:
    yield
    print(f"\nfuzz cases: {sum(CASES.values())} in all")
    for name, count in sorted(CASES.items()):
        print(f"  {count:5d}  {name}")


def seed_images() -> list[bytes]:
    """Valid images in every format and mode the decoder must take or refuse cleanly, to mutate."""
    photo = images.astronaut()[::4, ::4]
    rgba = Image.fromarray(photo).convert("RGBA")
    out = [images.encode(photo, "JPEG"), images.encode(photo, "PNG"), images.encode(photo, "WEBP")]
    modes = [("RGBA", "PNG"), ("L", "PNG"), ("CMYK", "JPEG"), ("I;16", "PNG"), ("P", "GIF"), ("RGB", "TIFF")]
    for mode, fmt in modes:
        img = rgba.convert(mode)
        buffer = io.BytesIO()
        img.save(buffer, fmt)
        out.append(buffer.getvalue())
    return out


SEEDS = seed_images()


@st.composite
def damaged_images(draw: st.DrawFn) -> bytes:
    """A valid image truncated, with flipped bytes, with a chunk spliced in, or random bytes behind its magic."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    how = draw(st.sampled_from(["truncate", "flip", "splice", "magic"]))
    if how == "truncate":
        return bytes(data[: draw(st.integers(0, len(data) - 1))])
    if how == "flip":
        for _ in range(draw(st.integers(1, 16))):
            i = draw(st.integers(0, len(data) - 1))
            data[i] = draw(st.integers(0, 255))
        return bytes(data)
    if how == "splice":
        i = draw(st.integers(0, len(data)))
        return bytes(data[:i] + draw(st.binary(min_size=1, max_size=256)) + data[i:])
    return bytes(data[:16]) + draw(st.binary(max_size=2048))


def is_clean_4xx(r: httpx.Response) -> bool:
    if not 400 <= r.status_code < 500:
        return False
    error = r.json().get("error", {})
    return bool(error.get("code")) and bool(error.get("message"))


@settings(max_examples=400, derandomize=True, deadline=None)
@given(data=st.one_of(damaged_images(), st.binary(max_size=4096)))
def test_the_gateway_header_check_refuses_or_accepts_any_bytes(data: bytes) -> None:
    CASES["header check (in-process)"] += 1
    try:
        header = inspect_header(data, MAX_PIXELS)
    except ApiError as exc:
        assert 400 <= exc.status < 500 and exc.code
    else:
        assert header.width > 0 and header.height > 0


@settings(max_examples=400, derandomize=True, deadline=None)
@given(data=st.one_of(damaged_images(), st.binary(max_size=4096)))
def test_the_detector_decoder_refuses_or_decodes_any_bytes(data: bytes) -> None:
    CASES["detector decode (in-process)"] += 1
    try:
        image = decode_image(data, MAX_PIXELS)
    except ImageDecodeError as exc:
        assert exc.code
    else:
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3


@settings(max_examples=150, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.one_of(damaged_images(), st.binary(max_size=4096)))
def test_detect_answers_damaged_images_with_200_or_a_clean_4xx(api: httpx.Client, data: bytes) -> None:
    CASES["POST /v1/detect with damaged images"] += 1
    r = api.post("/v1/detect", files={"image": ("x.jpg", data, "image/jpeg")})
    assert r.status_code == 200 or is_clean_4xx(r), (r.status_code, r.text[:300])


def test_every_operation_survives_generated_requests(api: httpx.Client) -> None:
    """Schemathesis generates requests for each operation of our OpenAPI schema (valid and invalid parameters,
    bodies, ids), 25 per operation."""
    schema = schemathesis.openapi.from_url(str(api.base_url.join("/openapi.json")))
    base_url = str(api.base_url).rstrip("/")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:

        @settings(max_examples=25, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def call(case: schemathesis.Case) -> None:
            CASES[f"{case.method} {case.path}"] += 1
            response = case.call(base_url=base_url, timeout=60)
            where = f"{case.method} {case.formatted_path}: {response.status_code} {response.content[:300]!r}"
            assert response.status_code < 500, where
            if response.status_code >= 400:
                error = response.json().get("error", {})
                assert error.get("code") and error.get("message"), where

        call()
