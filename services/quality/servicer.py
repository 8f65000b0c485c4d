"""Quality gRPC servicer: proto ↔ numpy around QualityModel."""

from __future__ import annotations

import grpc
from faceplane.v1 import analysis_pb2, analysis_pb2_grpc, common_pb2
from pydantic import Field

from services.catalogue import BY_NAME
from services.quality.model import QualityModel
from services.runtime.analysis import CropServicer, crop_service
from services.runtime.modelrepo import load_model
from services.runtime.server import Registration
from services.runtime.settings import ServiceSettings


class QualitySettings(ServiceSettings):
    port: int = Field(BY_NAME["quality"].port, description="gRPC port.")
    model: str = Field("quality_faceplane", description="The face-quality model (a folder of model-repo/).")


class QualityServicer(CropServicer, analysis_pb2_grpc.QualityServicer):
    async def Analyze(
        self, request: common_pb2.CropsRequest, context: grpc.aio.ServicerContext
    ) -> analysis_pb2.QualityResponse:
        results = await self.predict(request, context)
        return analysis_pb2.QualityResponse(
            results=[
                analysis_pb2.QualityResult(score=r.score, sharpness=r.sharpness, brightness=r.brightness)
                for r in results
            ],
            model=self.info.models[0],
        )


def build(settings: QualitySettings) -> list[Registration]:
    loaded = load_model(settings.model_repo, settings.model, settings.backend_options())
    service = analysis_pb2.DESCRIPTOR.services_by_name["Quality"]
    predict = QualityModel(loaded).predict
    return [
        crop_service(
            QualityServicer,
            predict,
            [loaded],
            settings,
            service,
            analysis_pb2_grpc.add_QualityServicer_to_server,
        )
    ]
