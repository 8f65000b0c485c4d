"""Emotion gRPC servicer: proto ↔ numpy around EmotionModel."""

from __future__ import annotations

import grpc
from faceplane.v1 import analysis_pb2, analysis_pb2_grpc, common_pb2
from pydantic import Field

from services.catalogue import BY_NAME
from services.emotion.model import EmotionModel
from services.runtime.analysis import CropServicer, crop_service
from services.runtime.modelrepo import load_model
from services.runtime.server import Registration
from services.runtime.settings import ServiceSettings


class EmotionSettings(ServiceSettings):
    port: int = Field(BY_NAME["emotion"].port, description="gRPC port.")
    model: str = Field("emotion_faceplane", description="The emotion model (a folder of model-repo/).")


class EmotionServicer(CropServicer, analysis_pb2_grpc.EmotionServicer):
    async def Analyze(
        self, request: common_pb2.CropsRequest, context: grpc.aio.ServicerContext
    ) -> analysis_pb2.EmotionResponse:
        results = await self.predict(request, context)
        return analysis_pb2.EmotionResponse(
            results=[analysis_pb2.EmotionResult(label=r.label, scores=r.scores) for r in results],
            model=self.info.models[0],
        )


def build(settings: EmotionSettings) -> list[Registration]:
    loaded = load_model(settings.model_repo, settings.model_folder(settings.model), settings.backend_options())
    service = analysis_pb2.DESCRIPTOR.services_by_name["Emotion"]
    predict = EmotionModel(loaded).predict
    return [
        crop_service(
            EmotionServicer,
            predict,
            [loaded],
            settings,
            service,
            analysis_pb2_grpc.add_EmotionServicer_to_server,
        )
    ]
