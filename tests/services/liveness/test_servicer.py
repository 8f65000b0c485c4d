"""The liveness service in-process over gRPC: Describe names its two box crops, Analyze answers upstream's sample
crops (two per face, face-major) one result per face with the labels at the default threshold or at the
THRESHOLD setting, and crops out of its spec order are invalid_crop."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import numpy as np
import pytest
from faceplane.v1 import analysis_pb2_grpc, common_pb2

from deploy.local.stack import free_port
from services.liveness.servicer import LivenessSettings, build
from services.runtime.crops import crop_to_proto
from services.runtime.server import ServiceServer
from tests.services.conftest import MODEL_REPO

IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def sample_request() -> common_pb2.CropsRequest:
    """Upstream's three sample faces (F1, F2: attacks; T1: real), each its V2 crop then its V1SE crop."""
    with np.load(MODEL_REPO / "minifasnet" / "samples.npz") as data:
        v2, v1se = data["crops_v2"], data["crops_v1se"]
    crops = []
    for a, b in zip(v2, v1se, strict=True):
        crops += [crop_to_proto("minifasnet_v2", a, IDENTITY), crop_to_proto("minifasnet_v1se", b, IDENTITY)]
    return common_pb2.CropsRequest(crops=crops)


async def serve(settings: LivenessSettings) -> AsyncIterator[analysis_pb2_grpc.LivenessStub]:
    server = ServiceServer(settings, build(settings))
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            yield analysis_pb2_grpc.LivenessStub(channel)
    finally:
        await server.stop()


@pytest.fixture
async def stub() -> AsyncIterator[analysis_pb2_grpc.LivenessStub]:
    async for s in serve(LivenessSettings(port=free_port())):
        yield s


async def test_describe_names_two_inside_box_crops(stub: analysis_pb2_grpc.LivenessStub) -> None:
    info = await stub.Describe(common_pb2.DescribeRequest(), timeout=10)
    assert info.models[0].name == "minifasnet"
    assert [(c.name, c.kind, c.size, round(c.scale, 3), c.inside) for c in info.crops] == [
        ("minifasnet_v2", common_pb2.CropSpec.BOX, 80, 2.7, True),
        ("minifasnet_v1se", common_pb2.CropSpec.BOX, 80, 4.0, True),
    ]


async def test_analyze_answers_one_result_per_face(stub: analysis_pb2_grpc.LivenessStub) -> None:
    reply = await stub.Analyze(sample_request(), timeout=30)
    assert reply.model.name == "minifasnet"
    assert [r.label for r in reply.results] == ["spoof", "spoof", "real"]
    assert [round(r.score, 3) for r in reply.results] == [0.302, 0.004, 1.0]


async def test_the_threshold_setting_overrides_the_models() -> None:
    async for stub in serve(LivenessSettings(port=free_port(), threshold=0.0184)):
        reply = await stub.Analyze(sample_request(), timeout=30)
        assert [r.label for r in reply.results] == ["real", "spoof", "real"]


async def test_crops_out_of_its_spec_order_are_invalid(stub: analysis_pb2_grpc.LivenessStub) -> None:
    crops = list(sample_request().crops)
    crops[0], crops[1] = crops[1], crops[0]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Analyze(common_pb2.CropsRequest(crops=crops), timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert dict(err.value.trailing_metadata() or ())["faceplane-error-code"] == "invalid_crop"
