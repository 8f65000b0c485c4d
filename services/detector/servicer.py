"""Detector gRPC servicer: proto ↔ numpy around FacePipeline, nothing else."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import grpc
from faceplane.v1 import common_pb2, detector_pb2, detector_pb2_grpc
from pydantic import Field

from services.detector.decode import ImageDecodeError
from services.detector.detectors import create_detector
from services.detector.pipeline import DetectionResult, FacePipeline
from services.detector.yunet import DetectorFailure
from services.runtime.analysis import model_info
from services.runtime.backends import BackendError
from services.runtime.crops import CropError, crop_to_proto, spec_from_proto
from services.runtime.errors import abort, abort_invalid, abort_unavailable
from services.runtime.modelrepo import CropConfig, load_model
from services.runtime.server import Registration
from services.runtime.settings import ServiceSettings

MAX_CROP_SPECS = 8


class DetectorSettings(ServiceSettings):
    port: int = Field(50051, description="gRPC port.")
    model: str = Field("yunet", description="The face detector (a folder of model-repo/): `yunet` or `mtcnn`.")
    max_pixels: int = Field(40_000_000, description="Pixels per image the detector decodes; larger is refused.")
    max_faces: int = Field(100, description="Most faces returned per image (the largest first).")


def _landmarks(points: Sequence[Sequence[float]]) -> common_pb2.Landmarks:
    p = [common_pb2.Point(x=float(x), y=float(y)) for x, y in points]
    return common_pb2.Landmarks(left_eye=p[0], right_eye=p[1], nose=p[2], mouth_left=p[3], mouth_right=p[4])


def to_proto(
    result: DetectionResult, specs: Sequence[CropConfig], model: common_pb2.ModelInfo
) -> detector_pb2.DetectResponse:
    response = detector_pb2.DetectResponse(width=result.width, height=result.height, model=model)
    for face in result.faces:
        x1, y1, x2, y2 = (float(v) for v in face.box)
        out = response.faces.add(
            box=common_pb2.Box(x=x1, y=y1, width=x2 - x1, height=y2 - y1),
            confidence=face.score,
            crops=[crop_to_proto(spec.name, pixels) for spec, pixels in zip(specs, face.crops, strict=True)],
        )
        if face.landmarks is not None:
            out.landmarks.CopyFrom(_landmarks(face.landmarks))
    return response


class DetectorServicer(detector_pb2_grpc.DetectorServicer):
    def __init__(self, pipeline: FacePipeline, model: common_pb2.ModelInfo) -> None:
        self.pipeline = pipeline
        self.model = model

    async def Describe(
        self, request: common_pb2.DescribeRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.ServiceInfo:
        return common_pb2.ServiceInfo(models=[self.model])

    async def Detect(
        self, request: detector_pb2.DetectRequest, context: grpc.aio.ServicerContext
    ) -> detector_pb2.DetectResponse:
        if len(request.crops) > MAX_CROP_SPECS:
            await abort_invalid(context, "too_many_crop_specs", f"at most {MAX_CROP_SPECS} crop specs per call")
        if not 0.0 <= request.min_confidence <= 1.0:
            await abort_invalid(context, "invalid_min_confidence", "min_confidence must be within [0, 1]")
        try:
            specs = [spec_from_proto(c) for c in request.crops]
        except CropError as exc:
            await abort_invalid(context, "invalid_crop_spec", str(exc))
        try:
            result = await asyncio.to_thread(
                self.pipeline.run,
                request.image.data,
                specs,
                request.min_confidence if request.HasField("min_confidence") else None,
                request.max_faces,
                request.skip_detection,
            )
        except ImageDecodeError as exc:
            await abort_invalid(context, exc.code, str(exc))
        except BackendError as exc:
            await abort_unavailable(context, "model_unavailable", str(exc))
        except DetectorFailure as exc:
            await abort(context, grpc.StatusCode.INTERNAL, "detection_failed", str(exc))
        return to_proto(result, specs, self.model)


def build(settings: DetectorSettings) -> list[Registration]:
    model = load_model(settings.model_repo, settings.model, settings.backend_options())
    info = model_info(model, settings.backend)
    detector = create_detector(model)
    pipeline = FacePipeline(detector, settings.max_pixels, settings.max_faces)
    name = detector_pb2.DESCRIPTOR.services_by_name["Detector"].full_name
    add = detector_pb2_grpc.add_DetectorServicer_to_server
    return [Registration(DetectorServicer(pipeline, info), add, name, warm_up=detector.warm_up)]
