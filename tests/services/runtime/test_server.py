"""The service runtime, seen from outside: a real detector process speaking gRPC, health, reflection, metrics,
coded errors, and a clean exit on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import httpx
import pytest
from faceplane.v1 import common_pb2, detector_pb2, detector_pb2_grpc, generator_pb2, generator_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client import REGISTRY

from deploy.local.stack import available_services, free_port, spawn, wait_grpc_serving, wait_tcp
from gateway.clients import Services
from gateway.settings import Settings
from services.generator.model import FaceGenerator
from services.generator.servicer import GeneratorServicer
from services.runtime.analysis import model_info
from services.runtime.channels import token_metadata
from services.runtime.modelrepo import load_model
from services.runtime.server import Registration, ServiceServer
from services.runtime.settings import REPO_ROOT, ServiceSettings
from tests import images


@pytest.fixture
def channel(detector_address: str):
    with grpc.insecure_channel(detector_address) as ch:
        yield ch


def test_health_reports_serving_per_service(channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for name in ("", "faceplane.v1.Detector"):
        assert (
            health.Check(health_pb2.HealthCheckRequest(service=name)).status == health_pb2.HealthCheckResponse.SERVING
        )


def test_reflection_lists_the_services(channel: grpc.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    names = {s.name for r in responses for s in r.list_services_response.service}
    assert {"faceplane.v1.Detector", "grpc.health.v1.Health"} <= names


def test_detect_returns_aligned_crops_as_raw_pixels(channel: grpc.Channel) -> None:
    stub = detector_pb2_grpc.DetectorStub(channel)
    spec = common_pb2.CropSpec(name="arcface_112", size=112)
    reply = stub.Detect(
        detector_pb2.DetectRequest(image=common_pb2.Image(data=images.encode(images.astronaut())), crops=[spec])
    )
    assert (reply.width, reply.height) == (512, 512)
    assert len(reply.faces) == 1
    crop = reply.faces[0].crops[0]
    assert (crop.spec, crop.width, crop.height, crop.channels) == ("arcface_112", 112, 112, 3)
    assert len(crop.pixels) == 112 * 112 * 3
    assert reply.model.name == "yunet" and reply.model.backend == "onnx"  # the default detector


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (detector_pb2.DetectRequest(image=common_pb2.Image(data=b"nope")), "unsupported_image"),
        (detector_pb2.DetectRequest(), "empty_image"),
        (
            detector_pb2.DetectRequest(
                image=common_pb2.Image(data=images.encode(images.astronaut())),
                crops=[common_pb2.CropSpec(name="x", size=0)],
            ),
            "invalid_crop_spec",
        ),
        (
            detector_pb2.DetectRequest(
                image=common_pb2.Image(data=images.encode(images.astronaut())),
                crops=[common_pb2.CropSpec(name="x", size=50, template=[0.3, 0.4, 0.7, 0.4, 0.5])],
            ),
            "invalid_crop_spec",
        ),
        (
            detector_pb2.DetectRequest(
                image=common_pb2.Image(data=images.encode(images.astronaut())), min_confidence=3
            ),
            "invalid_min_confidence",
        ),
    ],
)
def test_bad_requests_are_invalid_argument_with_a_code(channel: grpc.Channel, request_, code: str) -> None:
    stub = detector_pb2_grpc.DetectorStub(channel)
    with pytest.raises(grpc.RpcError) as err:
        stub.Detect(request_)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert ("faceplane-error-code", code) in err.value.trailing_metadata()


def test_metrics_endpoint_counts_rpcs_and_errors(stack, channel: grpc.Channel) -> None:
    stub = detector_pb2_grpc.DetectorStub(channel)
    stub.Detect(detector_pb2.DetectRequest(image=common_pb2.Image(data=images.encode(images.no_face()))))
    with pytest.raises(grpc.RpcError):
        stub.Detect(detector_pb2.DetectRequest())
    text = httpx.get(f"http://127.0.0.1:{stack.ports['detector-metrics']}/metrics").text
    assert (
        'faceplane_grpc_server_handling_seconds_count{code="OK",method="Detect",service="faceplane.v1.Detector"}'
        in text
    )
    assert (
        'faceplane_grpc_server_errors_total{code="INVALID_ARGUMENT",method="Detect",service="faceplane.v1.Detector"}'
        in text
    )
    assert 'faceplane_grpc_server_in_flight{method="Detect",service="faceplane.v1.Detector"} 0.0' in text


def test_sigterm_drains_and_exits_cleanly(tmp_path) -> None:
    port = free_port()
    proc = spawn(
        [sys.executable, "-m", "services.detector"], {"FACEPLANE_DETECTOR_PORT": str(port)}, tmp_path / "d.log"
    )
    try:
        wait_grpc_serving(f"127.0.0.1:{port}")
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            pending = detector_pb2_grpc.DetectorStub(ch).Detect.future(
                detector_pb2.DetectRequest(image=common_pb2.Image(data=images.encode(images.group_of_ten()[0])))
            )
            time.sleep(0.3)  # let the call reach the server before the signal
            proc.send_signal(signal.SIGTERM)
            assert len(pending.result(timeout=30).faces) == 10  # the in-flight call finished
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do; TIME_WAIT remnants are normal
        s.bind(("127.0.0.1", port))
        s.listen()  # the port is free again: nothing else listens on it
    log = (tmp_path / "d.log").read_text()
    assert '"msg": "shutting down"' in log and '"msg": "stopped"' in log


# A generator process whose warm-up takes two minutes; argv[1] is its port.
WARMING_FOR_MINUTES = """
import asyncio, sys, time
from services.runtime.server import serve_until_signalled
from tests.services.runtime.test_server import generator_server
server = generator_server(lambda: time.sleep(120), port=int(sys.argv[1]), warm_up_timeout_s=300)
asyncio.run(serve_until_signalled(server.settings, server.registrations))
"""


def test_sigterm_during_the_warm_up_stops_at_once(tmp_path) -> None:
    """A replica replaced while it warms up leaves without finishing the warm-up (it never served anything)."""
    port = free_port()
    proc = spawn([sys.executable, "-c", WARMING_FOR_MINUTES, str(port)], {}, tmp_path / "g.log")
    try:
        wait_tcp(port, timeout_s=60)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            status = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5).status
        assert status == health_pb2.HealthCheckResponse.NOT_SERVING  # warming up
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, (tmp_path / "g.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()


def generator_server(warm_up: Callable[[], object], **settings: Any) -> ServiceServer:
    """An in-process generator service with the given warm-up, on a free port, not started."""
    loaded = load_model(REPO_ROOT / "model-repo", "dcgan_faces")
    servicer = GeneratorServicer(FaceGenerator(loaded), model_info(loaded, "onnx"))
    add = generator_pb2_grpc.add_GeneratorServicer_to_server
    registration = Registration(servicer, add, "faceplane.v1.Generator", warm_up=warm_up)
    return ServiceServer(ServiceSettings(**{"port": free_port(), **settings}), [registration])


async def health_of(server: ServiceServer) -> list[int]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.settings.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        return [
            (await health.Check(health_pb2.HealthCheckRequest(service=name))).status
            for name in ("", "faceplane.v1.Generator")
        ]


async def test_not_serving_until_warmed_up() -> None:
    """Readiness waits for the warm-up: a caller polling health sees NOT_SERVING while it runs, SERVING after."""
    warming, release = threading.Event(), threading.Event()

    def warm_up() -> None:
        warming.set()
        release.wait(10)

    server = generator_server(warm_up)
    starting = asyncio.create_task(server.start())
    try:
        assert await asyncio.to_thread(warming.wait, 10)
        assert await health_of(server) == [health_pb2.HealthCheckResponse.NOT_SERVING] * 2
        release.set()
        await starting
        assert await health_of(server) == [health_pb2.HealthCheckResponse.SERVING] * 2
    finally:
        release.set()
        await starting
        await server.stop()


def fails() -> None:
    raise RuntimeError("model server not up yet")


@pytest.mark.parametrize("warm_up", [fails, lambda: time.sleep(5)], ids=["raises", "too slow"])
async def test_a_failed_warm_up_still_serves(warm_up: Callable[[], object]) -> None:
    server = generator_server(warm_up, warm_up_timeout_s=0.5)
    try:
        await server.start()
        assert await health_of(server) == [health_pb2.HealthCheckResponse.SERVING] * 2
    finally:
        await server.stop()


@pytest.mark.parametrize("service", available_services())
def test_every_service_warms_up_before_serving(stack, service: str) -> None:
    lines = (stack.log_dir / f"{service}.log").read_text().splitlines()
    messages = [json.loads(line)["msg"] for line in lines if line.startswith("{")]
    assert "warm-up failed" not in messages
    assert "warmed up" in messages and "serving" in messages, messages
    assert messages.index("warmed up") < messages.index("serving")


async def test_the_gateway_sends_no_calls_to_a_replica_still_warming_up() -> None:
    """Two generator replicas behind one gateway channel: while the second warms up (NOT_SERVING, port open), every
    call goes to the first; once it is SERVING it gets its share."""
    release = threading.Event()
    calls = {"ready": 0, "warming": 0}

    def counting(server: ServiceServer, key: str) -> None:
        servicer = server.registrations[0].servicer
        generate = servicer.Generate

        async def counted(request, context):
            calls[key] += 1
            return await generate(request, context)

        servicer.Generate = counted

    ready, warming = generator_server(lambda: None), generator_server(lambda: release.wait(10))
    counting(ready, "ready")
    counting(warming, "warming")
    await ready.start()
    starting = asyncio.create_task(warming.start())
    urls = f"ipv4:127.0.0.1:{ready.settings.port},127.0.0.1:{warming.settings.port}"
    services = Services(Settings(services={"detector": "", "generator": urls}))
    stub = services.require("generator").stub
    try:
        await asyncio.sleep(0.5)  # both ports open, the second one's warm-up held
        for _ in range(10):
            await stub.Generate(generator_pb2.GenerateRequest(count=1, seed=0), timeout=5)
        assert calls == {"ready": 10, "warming": 0}
        release.set()
        await starting
        for _ in range(20):
            await stub.Generate(generator_pb2.GenerateRequest(count=1, seed=0), timeout=5)
            if calls["warming"]:
                break
            await asyncio.sleep(0.1)
        assert calls["warming"] > 0
    finally:
        release.set()
        await starting
        await services.close()
        await ready.stop()
        await warming.stop()


async def test_a_warm_up_past_its_limit_does_not_hold_an_inference_worker() -> None:
    """With one inference worker, a warm-up still sleeping after its time limit must not delay the first call."""
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=1))
    server = generator_server(lambda: time.sleep(5), warm_up_timeout_s=0.2)
    try:
        await server.start()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.settings.port}") as channel:
            stub = generator_pb2_grpc.GeneratorStub(channel)
            reply = await stub.Generate(generator_pb2.GenerateRequest(count=1, seed=0), timeout=2)
        assert len(reply.images) == 1
    finally:
        await server.stop()


def refusal(error: grpc.aio.AioRpcError) -> tuple[grpc.StatusCode, str | None]:
    codes = [v for k, v in (error.trailing_metadata() or ()) if k == "faceplane-error-code"]
    return error.code(), codes[0] if codes else None


async def test_a_service_with_a_token_takes_calls_only_with_it() -> None:
    """AUTH_TOKEN set: a call without the token, or with another, is refused UNAUTHENTICATED with a machine code
    before it reaches the servicer (and counted in the metrics); with it, answered; health and reflection stay
    open (the kubelet's probes, the gateway's readiness)."""
    server = generator_server(lambda: None, auth_token="the-token")
    request = generator_pb2.GenerateRequest(count=1, seed=0)
    errors = {"service": "faceplane.v1.Generator", "method": "Generate", "code": "UNAUTHENTICATED"}
    refused_before = REGISTRY.get_sample_value("faceplane_grpc_server_errors_total", errors) or 0
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.settings.port}") as channel:
            stub = generator_pb2_grpc.GeneratorStub(channel)
            for metadata in [(), token_metadata("another-token"), (("authorization", "the-token"),)]:
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await stub.Generate(request, metadata=metadata, timeout=5)
                assert refusal(refused.value) == (grpc.StatusCode.UNAUTHENTICATED, "service_unauthenticated")
            reply = await stub.Generate(request, metadata=token_metadata("the-token"), timeout=5)
            assert len(reply.images) == 1
            health = health_pb2_grpc.HealthStub(channel)
            serving = health_pb2.HealthCheckResponse.SERVING
            assert (await health.Check(health_pb2.HealthCheckRequest())).status == serving
            reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
            listing = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
            names = {s.name async for r in listing for s in r.list_services_response.service}
            assert "faceplane.v1.Generator" in names
        refused_after = REGISTRY.get_sample_value("faceplane_grpc_server_errors_total", errors)
        assert refused_after == refused_before + 3
    finally:
        await server.stop()


async def test_the_gateway_sends_its_service_token() -> None:
    server = generator_server(lambda: None, auth_token="the-token")
    await server.start()
    url = f"127.0.0.1:{server.settings.port}"
    with_token = Services(Settings(services={"detector": "", "generator": url}, service_token="the-token"))
    without = Services(Settings(services={"detector": "", "generator": url}))
    request = generator_pb2.GenerateRequest(count=1, seed=0)
    try:
        assert len((await with_token.require("generator").stub.Generate(request, timeout=5)).images) == 1
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await without.require("generator").stub.Generate(request, timeout=5)
        assert refusal(refused.value) == (grpc.StatusCode.UNAUTHENTICATED, "service_unauthenticated")
        assert await without.require("generator").status(5) == "SERVING"  # readiness needs no token
    finally:
        await with_token.close()
        await without.close()
        await server.stop()
