"""Traces across the gateway and the services, read with the OpenTelemetry SDK's own in-memory exporter: the
services and the gateway of the fast tier (tests/inprocess.py), started here with tracing on (`trace_exporter`
`memory`), answer one /v1/analyze with one trace whose spans cover every hop, the context carried over gRPC."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from gateway import tracing as gateway_tracing
from services.catalogue import BY_NAME, FEATURES
from services.runtime import tracing as service_tracing
from tests import images
from tests.inprocess import InProcessServices, gateway_client

TRACED = {"tracing": True, "trace_exporter": "memory", "trace_sample_ratio": 1.0}
ANALYSIS = sorted({FEATURES[f].name for f in FEATURES})  # every per-face service: all features are asked for
EVERY_FEATURE = ",".join(FEATURES)
# Services of several crops per face, or whose model takes Crops (facemesh: its to_image), run each request as one
# model call (services/runtime/analysis.py): no batch, so no "batch wait" span.
ONE_CALL_PER_REQUEST = {"liveness", "facemesh"}


@pytest.fixture(scope="module")
def traced_services(inprocess: tuple[dict[str, str], str]) -> Iterator[tuple[dict[str, str], str]]:
    """The detector and every analysis service, tracing into memory, beside the session's (untraced) ones."""
    redis_url = inprocess[1]
    services = InProcessServices(["detector", *ANALYSIS], redis_url, **TRACED)
    try:
        yield services.start(), redis_url
    finally:
        services.stop()


@pytest.fixture(autouse=True)
def no_spans_yet() -> None:
    gateway_tracing.MEMORY.clear()
    service_tracing.MEMORY.clear()


def analyze(client: httpx.Client) -> httpx.Response:
    photo = images.encode(images.group_six())
    r = client.post("/v1/analyze", files={"image": ("x.jpg", photo, "image/jpeg")}, params={"features": EVERY_FEATURE})
    assert r.status_code == 200, r.text
    assert len(r.json()["faces"]) == 6
    return r


def exported() -> tuple[list[ReadableSpan], list[ReadableSpan]]:
    return list(gateway_tracing.MEMORY.get_finished_spans()), list(service_tracing.MEMORY.get_finished_spans())


def service_of(span: ReadableSpan) -> str:
    return str(span.resource.attributes["service.name"])


def test_one_request_is_one_trace_through_every_hop(traced_services: tuple[dict[str, str], str]) -> None:
    urls, redis_url = traced_services
    with gateway_client(urls, redis_url, **TRACED) as client:
        analyze(client)
    at_gateway, at_services = exported()
    spans = at_gateway + at_services
    assert {s.context.trace_id for s in spans} == {spans[0].context.trace_id}  # one trace
    by_id = {s.context.span_id: s for s in spans}

    def parent(span: ReadableSpan) -> ReadableSpan:
        assert span.parent is not None, span.name
        return by_id[span.parent.span_id]

    def ancestors(span: ReadableSpan) -> list[str]:
        names = []
        while span.parent is not None:
            span = parent(span)
            names.append(span.name)
        return names

    (root,) = [s for s in spans if s.parent is None]
    assert (root.name, root.kind, service_of(root)) == ("POST /v1/analyze", SpanKind.SERVER, "gateway")
    assert root.attributes["http.response.status_code"] == 200
    gateway_names = {s.name for s in at_gateway}
    assert {"read upload", "check image header", "crop specs", "fan-out"} <= gateway_names
    assert all(service_of(s) == "gateway" for s in at_gateway)

    # Every gRPC call the gateway made is a CLIENT span, and the service's SERVER span is its child: the context
    # crossed in the call's metadata (a remote parent), in the service's own name.
    clients = [s for s in at_gateway if s.kind == SpanKind.CLIENT]
    servers = [s for s in at_services if s.kind == SpanKind.SERVER]
    assert len(clients) == len(servers)
    for server in servers:
        client = parent(server)
        assert server.parent is not None and server.parent.is_remote
        assert client.kind == SpanKind.CLIENT and client.name == server.name
        assert client.attributes["peer.service"] == service_of(server)
        assert BY_NAME[service_of(server)].grpc_service == server.attributes["rpc.service"]
    called = {(service_of(s), s.name) for s in servers}
    assert ("detector", "faceplane.v1.Detector/Detect") in called
    for name in ANALYSIS:
        entry = BY_NAME[name]
        (call,) = [s for s in servers if s.name == f"{entry.grpc_service}/{entry.rpc}"]
        assert service_of(call) == name
        assert "fan-out" in ancestors(call)  # concurrently, after the detector

    # Inside the services: the detector's stages, and each analysis service's wait for its batch and model call.
    (detect,) = [s for s in servers if s.name == "faceplane.v1.Detector/Detect"]
    stages = [s for s in at_services if s.parent is not None and s.parent.span_id == detect.context.span_id]
    assert [s.name for s in sorted(stages, key=lambda s: s.start_time)] == ["decode", "detect", "crop"]
    assert next(s for s in stages if s.name == "detect").attributes["faceplane.faces"] == 6
    for name in ANALYSIS:
        own = [s for s in at_services if service_of(s) == name and s.kind == SpanKind.INTERNAL]
        inference = [s for s in own if s.name == "inference"]
        assert inference, name
        assert all(s.attributes["faceplane.batch.rows"] >= 6 for s in inference)
        assert {s.name for s in own} >= ({"inference"} if name in ONE_CALL_PER_REQUEST else {"batch wait", "inference"})
        for s in own:
            assert parent(s).kind == SpanKind.SERVER and service_of(parent(s)) == name
            assert parent(s).start_time <= s.start_time <= s.end_time <= parent(s).end_time


def test_with_tracing_off_at_the_gateway_no_traceparent_is_sent(traced_services: tuple[dict[str, str], str]) -> None:
    urls, redis_url = traced_services
    with gateway_client(urls, redis_url) as client:
        analyze(client)
    at_gateway, at_services = exported()
    assert at_gateway == []
    servers = [s for s in at_services if s.kind == SpanKind.SERVER]
    assert {service_of(s) for s in servers} == {"detector", *ANALYSIS}
    # Each call began a trace of its own at the service: nothing came in its metadata.
    assert all(s.parent is None for s in servers)
    assert len({s.context.trace_id for s in servers}) == len(servers)


def test_the_services_follow_the_gateways_sampling(traced_services: tuple[dict[str, str], str]) -> None:
    urls, redis_url = traced_services
    with gateway_client(urls, redis_url, **{**TRACED, "trace_sample_ratio": 0.0}) as client:
        analyze(client)
    assert exported() == ([], [])  # the services record at ratio 1.0, but the gateway's trace is not sampled
    with gateway_client(urls, redis_url, **TRACED) as client:  # and they would have been recorded
        analyze(client)
    assert all(exported())


def test_with_tracing_off_nothing_is_exported(api: httpx.Client) -> None:
    analyze(api)  # the session's gateway and services: tracing off, as by default
    assert exported() == ([], [])


def test_a_gallery_operation_is_a_span_of_the_embedders_call(traced_services: tuple[dict[str, str], str]) -> None:
    urls, redis_url = traced_services
    collection = f"traced-{uuid.uuid4().hex[:8]}"
    with gateway_client(urls, redis_url, **TRACED) as client:
        r = client.post(f"/v1/collections/{collection}/subjects", json={"subject_id": "eileen"})
        assert r.status_code == 201, r.text
        assert client.post(f"/v1/collections/{collection}/subjects", json={"subject_id": "eileen"}).status_code == 409
    at_gateway, at_services = exported()
    gallery_spans = [s for s in at_services if s.name == "gallery create_subject"]
    created, refused = sorted(gallery_spans, key=lambda s: s.start_time)
    for gallery in (created, refused):
        assert gallery.attributes["db.system.name"] == "redis"
        server = next(s for s in at_services if s.context.span_id == gallery.parent.span_id)
        assert (server.name, service_of(server)) == ("faceplane.v1.Embedder/CreateSubject", "embedder")
    # The refusal is told as the caller got it: ALREADY_EXISTS with its machine code, on both sides of the call.
    (failed,) = [s for s in at_services if s.kind == SpanKind.SERVER and not s.status.is_ok]
    (failed_call,) = [s for s in at_gateway if s.kind == SpanKind.CLIENT and not s.status.is_ok]
    for s in (failed, failed_call):
        assert s.attributes["rpc.response.status_code"] == "ALREADY_EXISTS"
        assert s.attributes["faceplane.error_code"] == "already_exists"
    assert refused.events and refused.events[0].name == "exception"  # the gallery's AlreadyExists, recorded
