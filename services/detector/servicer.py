"""Detector gRPC servicer: proto ↔ numpy around FacePipeline, nothing else."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import grpc
from faceplane.v1 import common_pb2, detector_pb2, detector_pb2_grpc
from pydantic import Field

from services.catalogue import BY_NAME
from services.detector.detectors import create_detector
from services.detector.pipeline import DetectionResult, FacePipeline
from services.detector.yunet import DetectorFailure
from services.runtime.analysis import model_info
from services.runtime.crops import crop_to_proto, spec_from_proto
from services.runtime.error_codes import ErrorCode
from services.runtime.errors import ServiceError
from services.runtime.modelrepo import CropConfig, load_model
from services.runtime.server import Registration
from services.runtime.settings import ServiceSettings

MAX_CROP_SPECS = 8


class DetectorSettings(ServiceSettings):
    port: int = Field(BY_NAME["detector"].port, description="gRPC port.")
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
            crops=[
                crop_to_proto(spec.name, pixels, to_image)
                for spec, pixels, to_image in zip(specs, face.crops, face.to_image, strict=True)
            ],
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
            message = f"at most {MAX_CROP_SPECS} crop specs per call"
            raise ServiceError(message, code=ErrorCode.TOO_MANY_CROP_SPECS)
        if not 0.0 <= request.min_confidence <= 1.0:
            raise ServiceError("min_confidence must be within [0, 1]", code=ErrorCode.INVALID_MIN_CONFIDENCE)
        specs = [spec_from_proto(c) for c in request.crops]  # CropSpecError: invalid_crop_spec
        # ImageDecodeError (its own code), BackendError (model_unavailable), DetectorFailure (detection_failed).
        result = await asyncio.to_thread(
            self.pipeline.run,
            request.image.data,
            specs,
            request.min_confidence if request.HasField("min_confidence") else None,
            request.max_faces,
            request.skip_detection,
        )
        return to_proto(result, specs, self.model)


def build(settings: DetectorSettings) -> list[Registration]:
    model = load_model(settings.model_repo, settings.model_folder(settings.model), settings.backend_options())
    info = model_info(model, settings.backend)
    detector = create_detector(model)
    pipeline = FacePipeline(detector, settings.max_pixels, settings.max_faces)
    name = detector_pb2.DESCRIPTOR.services_by_name["Detector"].full_name
    add = detector_pb2_grpc.add_DetectorServicer_to_server
    errors = {DetectorFailure: ErrorCode.DETECTION_FAILED}  # the network answered outside the model's layout
    return [Registration(DetectorServicer(pipeline, info), add, name, warm_up=detector.warm_up, errors=errors)]
