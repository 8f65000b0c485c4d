"""The detector service in-process over gRPC: which model FACEPLANE_DETECTOR_MODEL picks, bad input as before, and a
network that answers out of YuNet's layout as a coded INTERNAL error (the process serves on)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import onnx
import pytest
from faceplane.v1 import common_pb2, detector_pb2, detector_pb2_grpc
from onnx import TensorProto, helper, numpy_helper

from deploy.local.stack import free_port
from services.detector.model import MtcnnDetector
from services.detector.servicer import DetectorSettings, build
from services.detector.yunet import OUTPUTS, YunetDetector
from services.runtime.server import ServiceServer
from services.runtime.settings import REPO_ROOT, load_settings
from tests import images, payloads

MODEL_REPO = REPO_ROOT / "model-repo"


def test_yunet_is_the_default_and_mtcnn_one_setting_away(monkeypatch: pytest.MonkeyPatch) -> None:
    assert DetectorSettings().model == "yunet"
    assert isinstance(build(DetectorSettings())[0].servicer.pipeline.detector, YunetDetector)
    monkeypatch.setenv("FACEPLANE_DETECTOR_MODEL", "mtcnn")
    settings = load_settings("detector", DetectorSettings)
    assert isinstance(build(settings)[0].servicer.pipeline.detector, MtcnnDetector)


def out_of_layout_yunet(folder: Path) -> None:
    """A model folder configured as YuNet whose graph has YuNet's tensor names but answers five points per stride,
    whatever the image (a wrong or damaged file)."""
    shutil.copytree(MODEL_REPO / "yunet", folder, ignore=shutil.ignore_patterns("*.onnx"))
    width = {"cls": 1, "obj": 1, "bbox": 4, "kps": 10}
    nodes = [
        helper.make_node(
            "Constant",
            [],
            [name],
            value=numpy_helper.from_array(np.full((1, 5, width[name.split("_")[0]]), 0.9, np.float32)),
        )
        for name in OUTPUTS
    ]
    graph = helper.make_graph(
        nodes,
        "out_of_layout",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in OUTPUTS],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 8
    onnx.save(model, folder / "yunet_n_dynamic.onnx")


async def serve(settings: DetectorSettings) -> AsyncIterator[detector_pb2_grpc.DetectorStub]:
    server = ServiceServer(settings, build(settings))
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            yield detector_pb2_grpc.DetectorStub(channel)
    finally:
        await server.stop()


@pytest.fixture
async def yunet_stub() -> AsyncIterator[detector_pb2_grpc.DetectorStub]:
    async for stub in serve(DetectorSettings(port=free_port())):
        yield stub


@pytest.fixture
async def broken_stub(tmp_path: Path) -> AsyncIterator[detector_pb2_grpc.DetectorStub]:
    out_of_layout_yunet(tmp_path / "yunet")
    async for stub in serve(DetectorSettings(port=free_port(), model_repo=tmp_path)):
        yield stub


async def test_yunet_over_grpc_finds_the_face_and_cuts_the_crop(yunet_stub: detector_pb2_grpc.DetectorStub) -> None:
    spec = common_pb2.CropSpec(name="arcface_112", size=112)
    request = detector_pb2.DetectRequest(image=common_pb2.Image(data=images.encode(images.astronaut())), crops=[spec])
    reply = await yunet_stub.Detect(request, timeout=30)
    assert reply.model.name == "yunet" and len(reply.faces) == 1
    face = reply.faces[0]
    assert face.landmarks.left_eye.x < face.landmarks.nose.x < face.landmarks.right_eye.x
    assert len(face.crops[0].pixels) == 112 * 112 * 3


@pytest.mark.parametrize(
    ("data", "code"),
    [(b"", "empty_image"), (b"nope", "unsupported_image"), (payloads.truncated_jpeg(), "corrupt_image")],
)
async def test_bad_input_is_invalid_argument_with_its_code(
    yunet_stub: detector_pb2_grpc.DetectorStub, data: bytes, code: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await yunet_stub.Detect(detector_pb2.DetectRequest(image=common_pb2.Image(data=data)), timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert dict(err.value.trailing_metadata() or ())["faceplane-error-code"] == code


async def test_a_network_out_of_layout_is_a_coded_internal_error(broken_stub: detector_pb2_grpc.DetectorStub) -> None:
    request = detector_pb2.DetectRequest(image=common_pb2.Image(data=images.encode(images.astronaut())))
    for _ in range(2):  # and the service still answers the next call the same way
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await broken_stub.Detect(request, timeout=30)
        assert err.value.code() == grpc.StatusCode.INTERNAL
        assert dict(err.value.trailing_metadata() or ())["faceplane-error-code"] == "detection_failed"
