"""Liveness gRPC servicer: proto ↔ numpy around LivenessModel (two box crops of each face, one result per face)."""

from __future__ import annotations

import grpc
from faceplane.v1 import analysis_pb2, analysis_pb2_grpc, common_pb2
from pydantic import Field

from services.catalogue import BY_NAME
from services.liveness.model import LivenessModel
from services.runtime.analysis import CropServicer, crop_service
from services.runtime.modelrepo import load_model
from services.runtime.server import Registration
from services.runtime.settings import ServiceSettings


class LivenessSettings(ServiceSettings):
    port: int = Field(BY_NAME["liveness"].port, description="gRPC port.")
    model: str = Field("minifasnet", description="The liveness model (a folder of model-repo/).")
    threshold: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="The liveness score (the probability that the face is real) at or above which a face is "
        "`real`; unset: the model's `[params] threshold` (minifasnet: 0.5). Camera-dependent: calibrate it on "
        "your own camera's live and attack photos (`python -m recipes.liveness_eval`; docs/models.md).",
    )


class LivenessServicer(CropServicer, analysis_pb2_grpc.LivenessServicer):
    async def Analyze(
        self, request: common_pb2.CropsRequest, context: grpc.aio.ServicerContext
    ) -> analysis_pb2.LivenessResponse:
        results = await self.predict(request, context)
        return analysis_pb2.LivenessResponse(
            results=[analysis_pb2.LivenessResult(label=r.label, score=r.score) for r in results],
            model=self.info.models[0],
        )


def build(settings: LivenessSettings) -> list[Registration]:
    loaded = load_model(settings.model_repo, settings.model_folder(settings.model), settings.backend_options())
    service = analysis_pb2.DESCRIPTOR.services_by_name["Liveness"]
    model = LivenessModel(loaded, settings.threshold)
    return [
        crop_service(
            LivenessServicer,
            model.predict,
            [loaded],
            settings,
            service,
            analysis_pb2_grpc.add_LivenessServicer_to_server,
            specs=model.specs,
        )
    ]
