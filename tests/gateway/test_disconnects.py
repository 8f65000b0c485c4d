"""Clients that go away: mid-upload, or while the detector works for them. Neither is a server error (no 500 in
the metrics, no error in the log), and work left for a client that has gone is cancelled, not finished."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from deploy.local.stack import Stack, free_port, spawn, stop, wait_grpc_serving
from tests import images
from tests.gateway.own_gateway import own_gateway
from tests.metrics import sample, wait_until

pytestmark = pytest.mark.slow
HTTP_COUNT = "faceplane_http_request_seconds_count"


def send_request(port: int, content_type: str, body: bytes, length: int | None = None) -> socket.socket:
    """A POST /v1/detect whose Content-Length may promise more than `body`; the caller closes the socket."""
    s = socket.create_connection(("127.0.0.1", port))
    head = (
        f"POST /v1/detect HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body) if length is None else length}\r\n\r\n"
    )
    s.sendall(head.encode() + body)
    return s


def multipart(data: bytes) -> bytes:
    return (
        b"--b\r\nContent-Disposition: form-data; name=image; filename=x.jpg\r\nContent-Type: image/jpeg\r\n\r\n"
        + data
        + b"\r\n--b--\r\n"
    )


UPLOADS = {
    "json": ("application/json", b'{"image": "' + b"A" * 4096),
    "multipart": ("multipart/form-data; boundary=b", multipart(b"\xff" * 4096)[:-10]),
    "raw": ("image/jpeg", b"\xff\xd8\xff" + b"\x00" * 4096),
}


@pytest.mark.parametrize("kind", sorted(UPLOADS))
def test_a_client_gone_mid_upload_is_a_499_not_an_error(stack: Stack, kind: str) -> None:
    metrics = f"http://127.0.0.1:{stack.ports['gateway']}/metrics"
    labels = {"route": "/v1/detect", "method": "POST"}
    before = {status: sample(metrics, HTTP_COUNT, **labels, status=status) for status in ("499", "500", "400")}
    log = Path(stack.log_dir) / "gateway.log"
    log_size = log.stat().st_size
    content_type, partial = UPLOADS[kind]
    send_request(stack.ports["gateway"], content_type, partial, length=10 * len(partial)).close()

    def counted() -> float:
        return sum(sample(metrics, HTTP_COUNT, **labels, status=s) - n for s, n in before.items())

    wait_until(lambda: counted() >= 1, "the abandoned upload was never counted")
    assert sample(metrics, HTTP_COUNT, **labels, status="499") == before["499"] + 1
    assert sample(metrics, HTTP_COUNT, **labels, status="500") == before["500"]
    written = log.read_bytes()[log_size:].decode(errors="replace")
    assert "client disconnected" in written
    assert '"level": "error"' not in written and "Traceback" not in written, written


@pytest.fixture(scope="module")
def one_worker_detector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    """A detector with one inference thread (calls queue behind each other) and a keyless gateway in front."""
    log_dir = tmp_path_factory.mktemp("one-worker")
    ports = {name: free_port() for name in ("detector", "detector-metrics")}
    detector_env = {
        "FACEPLANE_DETECTOR_PORT": str(ports["detector"]),
        "FACEPLANE_DETECTOR_METRICS_PORT": str(ports["detector-metrics"]),
        "FACEPLANE_DETECTOR_INFERENCE_WORKERS": "1",
    }
    gateway_env = {
        "FACEPLANE_GATEWAY_SERVICES__DETECTOR": f"127.0.0.1:{ports['detector']}",
        "FACEPLANE_GATEWAY_DETECT_DEADLINE_S": "120",
        # The three large photos below come from one client: let them all in (admission is tested elsewhere).
        "FACEPLANE_GATEWAY_CLIENT_PIXEL_BUDGET": str(10**9),
    }
    detector = spawn([sys.executable, "-m", "services.detector"], detector_env, log_dir / "detector.log")
    try:
        wait_grpc_serving(f"127.0.0.1:{ports['detector']}", 120)
        with own_gateway(gateway_env, log_dir / "gateway.log") as client:
            yield {**ports, "gateway": client.base_url.port}
    finally:
        stop(detector)


def test_a_client_gone_while_the_detector_works_cancels_its_call(one_worker_detector: dict[str, int]) -> None:
    """Three big photos queue on a one-thread detector; their clients leave. The gateway cancels the calls still
    waiting (499, not a 200 answered into a closed socket; the first may have been answered before its client
    left) and the detector lets go of every one."""
    ports = one_worker_detector
    gateway_metrics = f"http://127.0.0.1:{ports['gateway']}/metrics"
    detector_metrics = f"http://127.0.0.1:{ports['detector-metrics']}/metrics"
    in_flight = {"name": "faceplane_grpc_server_in_flight", "method": "Detect"}
    big = images.encode(np.tile(images.astronaut(), (10, 10, 1)), quality=80)  # 5120², seconds of work in a queue
    body = multipart(big)
    sockets = [send_request(ports["gateway"], "multipart/form-data; boundary=b", body) for _ in range(3)]
    try:
        wait_until(lambda: sample(detector_metrics, **in_flight) == 3, "the three calls never reached the detector")
    finally:
        for s in sockets:
            s.close()
    detect = {"route": "/v1/detect", "method": "POST"}

    def ended() -> float:
        return sum(sample(gateway_metrics, HTTP_COUNT, **detect, status=s) for s in ("200", "499", "500"))

    wait_until(lambda: ended() == 3, "the abandoned requests never ended")
    assert sample(gateway_metrics, HTTP_COUNT, **detect, status="499") >= 2
    assert sample(gateway_metrics, HTTP_COUNT, **detect, status="500") == 0
    wait_until(lambda: sample(detector_metrics, **in_flight) == 0, "the detector kept the cancelled calls")
