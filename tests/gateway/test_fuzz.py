"""Bad input, generated: schemathesis against our own OpenAPI schema on the live gateway (every check it has), and
byte-level fuzzing of the image path (header check in the gateway, decoding in the detector, and 2,000 damaged
uploads through every upload route). Whatever a client sends gets a 2xx or a clear 4xx `{"error": {"code",
"message"}}` — never a 5xx, never a crash. Derandomised, so every run is the same.
"""

from __future__ import annotations

import base64
import io
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
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


# The upload routes, how many generated uploads each gets (2,000 in all), and how each takes its image.
UPLOAD_ROUTES = {
    "/v1/detect": 500,
    "/v1/analyze": 300,
    "/v1/anonymize?method=blur": 300,
    "/v1/collections/fuzz/identify": 300,
    "/v1/collections/fuzz/subjects/fuzzer/faces?allow_multiple=true": 300,
    "/v1/verify": 300,
}
GOOD = images.encode(images.astronaut()[::4, ::4])


def upload(path: str, data: bytes, how: str) -> tuple[str, bytes]:
    """The content type and body a client sends with `data` as its image: a multipart file, base64 in JSON, or a
    raw body."""
    fields = ("image1", "image2") if path == "/v1/verify" else ("image",)
    values = {fields[0]: data, **dict.fromkeys(fields[1:], GOOD)}  # verify: the damaged image, a good one beside
    if how == "multipart":
        files = {name: (f"{name}.jpg", value, "image/jpeg") for name, value in values.items()}
        request = httpx.Request("POST", "http://gateway", files=files)
    elif how == "json" or len(fields) > 1:
        encoded = {name: base64.b64encode(value).decode() for name, value in values.items()}
        request = httpx.Request("POST", "http://gateway", json=encoded)
    else:
        return "image/jpeg", data
    return request.headers["content-type"], request.read()


@st.composite
def damaged_uploads(draw: st.DrawFn, path: str) -> tuple[str, bytes]:
    """A damaged image (or random bytes) sent one of three ways; a tenth of them with the body itself damaged
    (the multipart framing or the JSON around the image): truncated or with bytes flipped."""
    data = draw(st.one_of(damaged_images(), st.binary(max_size=4096)))
    content_type, body = upload(path, data, draw(st.sampled_from(["multipart", "json", "raw"])))
    if draw(st.integers(0, 9)) == 0 and body:
        damaged = bytearray(body)
        if draw(st.booleans()):
            damaged = damaged[: draw(st.integers(0, len(damaged) - 1))]
        else:
            for _ in range(draw(st.integers(1, 8))):
                damaged[draw(st.integers(0, len(damaged) - 1))] = draw(st.integers(0, 255))
        body = bytes(damaged)
    return content_type, body


@pytest.fixture(scope="module")
def fuzz_subject(api: httpx.Client) -> None:
    """The subject the enrolment route enrols generated uploads for."""
    r = api.post("/v1/collections/fuzz/subjects", json={"subject_id": "fuzzer"})
    assert r.status_code in (201, 409), r.text


@pytest.mark.parametrize("path", list(UPLOAD_ROUTES))
def test_upload_routes_answer_damaged_uploads_with_2xx_or_a_clean_4xx(
    api: httpx.Client, fuzz_subject: None, path: str
) -> None:
    @settings(max_examples=UPLOAD_ROUTES[path], derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(sent=damaged_uploads(path))
    def send(sent: tuple[str, bytes]) -> None:
        CASES[f"POST {path.split('?')[0]} with damaged uploads"] += 1
        r = api.post(path, content=sent[1], headers={"content-type": sent[0]})
        assert 200 <= r.status_code < 300 or is_clean_4xx(r), (r.status_code, r.text[:300])

    send()


SCHEMATHESIS_CONFIG = Path(__file__).with_name("schemathesis.toml")


def test_schemathesis_finds_nothing_in_the_whole_schema(api: httpx.Client, tmp_path: Path) -> None:
    """Every phase (coverage, fuzzing, stateful sequences over inferred links) and every check schemathesis has:
    no 5xx, every answer as the schema documents it (status, content type, body, headers), schema-valid requests
    accepted and invalid ones refused, 405 with `Allow` for undeclared methods. The few refusals of schema-valid
    data that are right (an image field holding bytes that are no photo, an opaque page token) are listed, each
    with its reason, in schemathesis.toml."""
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(SCHEMATHESIS_CONFIG),
        "run",
        str(api.base_url.join("/openapi.json")),
        "--checks=all",
        "--max-examples=50",
        "--generation-deterministic",
        "--workers=1",
        "--request-timeout=60",
        "--no-color",
        "--report=junit",
        f"--report-dir={tmp_path}",
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=1200, cwd=tmp_path)
    summary = re.search(r"(\d+) generated", run.stdout)
    CASES["schemathesis (every operation, every check)"] += int(summary.group(1)) if summary else 0
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]
    assert summary and int(summary.group(1)) >= 500, run.stdout[-3000:]
