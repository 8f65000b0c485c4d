"""AgeGender gRPC servicer: proto ↔ numpy around AgeGenderModel."""

from __future__ import annotations

import grpc
from faceplane.v1 import analysis_pb2, analysis_pb2_grpc, common_pb2
from pydantic import Field

from services.agegender.model import age_gender_model
from services.catalogue import BY_NAME
from services.runtime.analysis import CropServicer, crop_service
from services.runtime.modelrepo import load_model
from services.runtime.server import Registration
from services.runtime.settings import ServiceSettings


class AgeGenderSettings(ServiceSettings):
    port: int = Field(BY_NAME["agegender"].port, description="gRPC port.")
    model: str = Field("agegender_faceplane", description="The age/gender model (a folder of model-repo/).")


class AgeGenderServicer(CropServicer, analysis_pb2_grpc.AgeGenderServicer):
    async def Analyze(
        self, request: common_pb2.CropsRequest, context: grpc.aio.ServicerContext
    ) -> analysis_pb2.AgeGenderResponse:
        results = await self.predict(request, context)
        return analysis_pb2.AgeGenderResponse(
            results=[
                analysis_pb2.AgeGenderResult(age=r.age, gender=r.gender, gender_score=r.gender_score) for r in results
            ],
            model=self.info.models[0],
        )


def build(settings: AgeGenderSettings) -> list[Registration]:
    loaded = load_model(settings.model_repo, settings.model_folder(settings.model), settings.backend_options())
    service = analysis_pb2.DESCRIPTOR.services_by_name["AgeGender"]
    predict = age_gender_model(loaded).predict
    return [
        crop_service(
            AgeGenderServicer,
            predict,
            [loaded],
            settings,
            service,
            analysis_pb2_grpc.add_AgeGenderServicer_to_server,
        )
    ]
