"""Locust load for faceplane: a REST user mix against the gateway and a gRPC user calling services directly.

    make loadtest                                   # the whole stack on loopback, 60 s at 16 users, CSV stats
    locust -f loadtest/locustfile.py --host https://faces.example.com  # a cluster: the web UI, REST users only
    FACEPLANE_LOADTEST_DETECTOR=10.0.0.5:50051 locust -f loadtest/locustfile.py ...   # also the gRPC user
    FACEPLANE_API_KEY=fp_… locust -f loadtest/locustfile.py ...    # a gateway with API keys on (read + enrol)

Photos are the tests' real ones (tests/images.py: skimage's astronaut and InsightFace's t1.jpg).
"""

from __future__ import annotations

import itertools
import os
import time
import uuid
from typing import Any

import grpc
import grpc.experimental.gevent
from faceplane.v1 import common_pb2, detector_pb2, detector_pb2_grpc
from locust import HttpUser, User, between, events, task

from tests import images

# Locust runs users as gevent greenlets: without this a blocking gRPC call stalls every user in the process (the
# REST users' idle keep-alive connections then time out on the server: "Remote end closed connection").
grpc.experimental.gevent.init_gevent()

ONE_FACE = images.encode(images.astronaut(), quality=90)
GROUP = images.encode(images.group_six(), quality=90)
COLLECTION = f"loadtest-{uuid.uuid4().hex[:8]}"
_ids = itertools.count()


def image(data: bytes, field: str = "image") -> dict[str, Any]:
    return {field: ("photo.jpg", data, "image/jpeg")}


class RestUser(HttpUser):
    """What an application does: mostly analysis and identification, some enrolment, verification, generation."""

    wait_time = between(0.05, 0.2)

    def on_start(self) -> None:
        key = os.environ.get("FACEPLANE_API_KEY")
        if key:  # a key with read and enrol scopes, for a gateway with auth on
            self.client.headers["Authorization"] = f"Bearer {key}"
        self.subject = f"person-{os.getpid()}-{next(_ids)}"
        with self.client.post(f"/v1/collections/{COLLECTION}/subjects", json={"subject_id": self.subject},
                              name="/v1/collections/{c}/subjects", catch_response=True) as r:  # fmt: skip
            if r.status_code not in (201, 409):
                r.failure(f"create subject: {r.status_code} {r.text[:200]}")
        self.client.post(f"/v1/collections/{COLLECTION}/subjects/{self.subject}/faces", files=image(ONE_FACE),
                         name="/v1/collections/{c}/subjects/{s}/faces")  # fmt: skip

    @task(3)
    def detect(self) -> None:
        self.client.post("/v1/detect", files=image(GROUP))

    @task(3)
    def analyze(self) -> None:
        with self.client.post("/v1/analyze", files=image(ONE_FACE), catch_response=True) as r:
            if r.status_code == 200 and r.json().get("errors"):
                r.failure(f"partial answer: {r.json()['errors']}")

    @task(2)
    def identify(self) -> None:
        with self.client.post(f"/v1/collections/{COLLECTION}/identify", files=image(ONE_FACE),
                              name="/v1/collections/{c}/identify", catch_response=True) as r:  # fmt: skip
            if r.status_code == 200 and not r.json()["faces"][0]["matches"]:
                r.failure("the enrolled face was not identified")

    @task(1)
    def verify(self) -> None:
        self.client.post("/v1/verify", files={**image(ONE_FACE, "image1"), **image(GROUP, "image2")})

    @task(1)
    def generate(self) -> None:
        self.client.post("/v1/generate", json={"count": 4})

    @task(1)
    def enrol(self) -> None:
        self.client.post(f"/v1/collections/{COLLECTION}/subjects/{self.subject}/faces", files=image(ONE_FACE),
                         name="/v1/collections/{c}/subjects/{s}/faces")  # fmt: skip


class DetectorGrpcUser(User):
    """A caller inside the cluster talking to the detector service itself (no gateway), reported as gRPC."""

    wait_time = between(0.05, 0.2)
    address = os.environ.get("FACEPLANE_LOADTEST_DETECTOR", "")
    # Two of them when told where the detector is, none otherwise; every other user is a RestUser.
    fixed_count = 2 if address else 0

    def on_start(self) -> None:
        self.channel = grpc.insecure_channel(self.address)
        self.stub = detector_pb2_grpc.DetectorStub(self.channel)

    def on_stop(self) -> None:
        self.channel.close()

    @task
    def detect(self) -> None:
        request = detector_pb2.DetectRequest(image=common_pb2.Image(data=GROUP))
        start, error, size = time.perf_counter(), None, 0
        try:
            size = self.stub.Detect(request, timeout=30).ByteSize()
        except grpc.RpcError as exc:
            error = exc
        elapsed_ms = 1000 * (time.perf_counter() - start)
        events.request.fire(request_type="grpc", name="faceplane.v1.Detector/Detect", response_time=elapsed_ms,
                            response_length=size, exception=error, context={})  # fmt: skip
