"""The gateway's event loop serves everyone: a photo at the pixel limit being anonymised (decoded, blurred and
encoded again in the gateway, seconds of CPU) must not stop other requests from being answered meanwhile."""

from __future__ import annotations

import io
import threading

import httpx
import numpy as np
import pytest
from PIL import Image

from deploy.local.stack import Stack
from tests.metrics import sample, wait_until

pytestmark = pytest.mark.slow


def test_other_requests_are_answered_while_a_big_photo_is_anonymised(stack: Stack, api: httpx.Client) -> None:
    # 30 MP, the test stack's limit; a gradient, so that the PNG stays small but costs its full size to work on.
    pixels = np.zeros((5000, 6000, 3), np.uint8)
    pixels[..., 0] = np.arange(6000) % 256
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    detector = f"http://127.0.0.1:{stack.ports['detector-metrics']}/metrics"
    detected = {"name": "faceplane_grpc_server_handling_seconds_count", "method": "Detect"}
    before = sample(detector, **detected)
    answers: list[httpx.Response] = []
    done = threading.Event()

    def anonymise() -> None:
        files = {"image": ("big.png", buffer.getvalue(), "image/png")}
        answers.append(api.post("/v1/anonymize", files=files, params={"method": "blur"}, timeout=300))
        done.set()

    worker = threading.Thread(target=anonymise)
    worker.start()
    try:
        # Once the detector has answered, the gateway is decoding, blurring and encoding 30 MP.
        wait_until(lambda: sample(detector, **detected) > before or done.is_set(), "the detector never answered")
        assert not done.is_set(), "anonymised before the probe: the photo is too small to show anything"
        assert api.get("/healthz", timeout=300).status_code == 200
        assert not done.is_set(), "/healthz was answered only after the anonymisation: the event loop was blocked"
    finally:
        worker.join()
    assert answers[0].status_code == 200, answers[0].text
    assert answers[0].headers["content-type"] == "image/png"
