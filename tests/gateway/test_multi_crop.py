"""A service that takes two crops of each face, on the gateway's real request path: the in-process detector cuts
the union of the services' specs once, the gateway (gateway/analysis.py) sends each service its crops face-major in
its own spec order, and the service answers one result per face. The two-crop service is a small real servicer on
the runtime's CropServicer (the mean pixel of each crop, and where its centre lies in the image), answering on the
Emotion contract so that the catalogue's entry carries its results; a one-crop servicer on the AgeGender contract
shares its aligned spec (cut once for both)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import numpy as np
import pytest
from faceplane.v1 import analysis_pb2, analysis_pb2_grpc, common_pb2

from deploy.local.stack import free_port
from gateway.analysis import DetectOptions, analyze
from gateway.clients import Services
from gateway.settings import Settings
from services.detector.servicer import DetectorSettings
from services.detector.servicer import build as build_detector
from services.runtime.analysis import CropServicer, crop_service
from services.runtime.crops import Crops, crop_to_proto
from services.runtime.modelrepo import CropConfig, LoadedModel, ModelConfig
from services.runtime.server import ServiceServer
from services.runtime.settings import ServiceSettings
from tests import images

ALIGNED = CropConfig(name="arcface_112", size=112)
BOX = CropConfig(name="liveness_27", kind="box", size=80, scale=2.7, inside=True)
MODEL = LoadedModel(ModelConfig(name="mean_pixels", version="1", files={}), backends={}, card="")


def centre_on_image(to_image: np.ndarray, size: int) -> tuple[float, float]:
    x, y = to_image @ np.array([size / 2 - 0.5, size / 2 - 0.5, 1.0])
    return float(x), float(y)


def mean_pixels(crops: Crops) -> list[dict[str, float]]:
    """Per face: each crop's mean pixel and its centre in the image."""
    results = []
    for i in range(len(crops)):
        scores = {}
        for name, batch in crops.batches.items():
            x, y = centre_on_image(crops.to_image[name][i], batch.shape[1])
            scores |= {f"{name}.mean": float(batch[i].mean()), f"{name}.x": x, f"{name}.y": y}
        results.append(scores)
    return results


class TwoCrops(CropServicer, analysis_pb2_grpc.EmotionServicer):
    async def Analyze(
        self, request: common_pb2.CropsRequest, context: grpc.aio.ServicerContext
    ) -> analysis_pb2.EmotionResponse:
        results = await self.predict(request, context)
        return analysis_pb2.EmotionResponse(
            results=[analysis_pb2.EmotionResult(label="means", scores=r) for r in results], model=self.info.models[0]
        )


class OneCrop(CropServicer, analysis_pb2_grpc.AgeGenderServicer):
    async def Analyze(
        self, request: common_pb2.CropsRequest, context: grpc.aio.ServicerContext
    ) -> analysis_pb2.AgeGenderResponse:
        means = await self.predict(request, context)
        return analysis_pb2.AgeGenderResponse(
            results=[analysis_pb2.AgeGenderResult(age=m, gender="female") for m in means], model=self.info.models[0]
        )


def servers() -> dict[str, ServiceServer]:
    detector = DetectorSettings(port=free_port())
    two = crop_service(
        TwoCrops,
        mean_pixels,
        [MODEL],
        ServiceSettings(),
        analysis_pb2.DESCRIPTOR.services_by_name["Emotion"],
        analysis_pb2_grpc.add_EmotionServicer_to_server,
        specs=[ALIGNED, BOX],
    )
    one_model = LoadedModel(ModelConfig(name="mean_pixel", version="1", files={}, crop=ALIGNED), backends={}, card="")
    one = crop_service(
        OneCrop,
        lambda batch: [float(crop.mean()) for crop in batch],
        [one_model],
        ServiceSettings(),
        analysis_pb2.DESCRIPTOR.services_by_name["AgeGender"],
        analysis_pb2_grpc.add_AgeGenderServicer_to_server,
    )
    return {
        "detector": ServiceServer(detector, build_detector(detector)),
        "emotion": ServiceServer(ServiceSettings(port=free_port()), [two]),
        "agegender": ServiceServer(ServiceSettings(port=free_port()), [one]),
    }


@pytest.fixture
async def running() -> AsyncIterator[dict[str, ServiceServer]]:
    started = servers()
    for server in started.values():
        await server.start()
    try:
        yield started
    finally:
        for server in started.values():
            await server.stop()


@pytest.fixture
async def services(running: dict[str, ServiceServer]) -> AsyncIterator[Services]:
    urls = {name: f"127.0.0.1:{server.port}" for name, server in running.items()}
    services = Services(Settings(services=urls))
    try:
        yield services
    finally:
        await services.close()


async def test_each_service_gets_its_crops_of_each_face_and_answers_per_face(
    running: dict[str, ServiceServer], services: Services
) -> None:
    image = images.group_six()
    data = images.encode(image, "PNG")
    settings = services.settings
    body = await analyze(services, settings, data, DetectOptions(), {"emotion", "age"})
    pipeline = running["detector"].registrations[0].servicer.pipeline
    expected = pipeline.run(data, [ALIGNED, BOX]).faces
    assert len(body["faces"]) == len(expected) == 6
    for face, cut in zip(body["faces"], expected, strict=True):
        assert not face.get("errors"), face
        scores = face["emotion"]["scores"]
        for k, spec in enumerate((ALIGNED, BOX)):
            assert scores[f"{spec.name}.mean"] == pytest.approx(cut.crops[k].mean(), abs=1e-3)
            x, y = centre_on_image(cut.to_image[k], spec.size)
            assert (scores[f"{spec.name}.x"], scores[f"{spec.name}.y"]) == pytest.approx((x, y), abs=1e-3)
            box = face["box"]
            assert box["x"] <= scores[f"{spec.name}.x"] <= box["x"] + box["width"]
            assert box["y"] <= scores[f"{spec.name}.y"] <= box["y"] + box["height"]
        # The one-crop service got the same aligned crops, one per face.
        assert face["age"]["value"] == pytest.approx(cut.crops[0].mean(), abs=0.06)
    # The faces' crops differ, so a face given another's crops would have been caught above.
    assert len({round(float(c.crops[1].mean()), 3) for c in expected}) == 6


async def test_describe_lists_the_specs_in_order(services: Services) -> None:
    info = await services.require("emotion").describe(5)
    assert [(s.name, s.kind) for s in info.crops] == [
        ("arcface_112", common_pb2.CropSpec.ALIGNED),
        ("liveness_27", common_pb2.CropSpec.BOX),
    ]
    assert info.crops[1].scale == pytest.approx(2.7) and info.crops[1].inside


def crop(spec: CropConfig) -> common_pb2.FaceCrop:
    pixels = np.zeros((spec.size, spec.size, 3), np.uint8)
    return crop_to_proto(spec.name, pixels, np.array([[1.0, 0, 0], [0, 1.0, 0]]))


@pytest.mark.parametrize(
    "crops",
    [
        [crop(ALIGNED), crop(BOX), crop(ALIGNED)],  # not a whole number of faces
        [crop(BOX), crop(ALIGNED)],  # out of the service's spec order
        [crop(ALIGNED), crop(CropConfig(name="liveness_27", kind="box", size=64))],  # the wrong size
        [crop(ALIGNED), common_pb2.FaceCrop(spec="liveness_27", width=80, height=80, channels=3, pixels=bytes(19200))],
    ],
    ids=["count", "order", "size", "no_to_image"],
)
async def test_crops_that_do_not_match_the_specs_are_invalid(
    services: Services, crops: list[common_pb2.FaceCrop]
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await services.require("emotion").stub.Analyze(common_pb2.CropsRequest(crops=crops), timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert dict(err.value.trailing_metadata() or ())["faceplane-error-code"] == "invalid_crop"
