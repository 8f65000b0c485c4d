"""Facemesh gRPC servicer: proto ↔ numpy around FaceMesh (head pose and the 468 mesh points of each face)."""

from __future__ import annotations

import grpc
from faceplane.v1 import analysis_pb2, analysis_pb2_grpc, common_pb2
from pydantic import Field

from services.catalogue import BY_NAME
from services.facemesh.model import FaceMesh, FacemeshResult
from services.runtime.analysis import CropServicer, crop_service
from services.runtime.modelrepo import load_model
from services.runtime.server import Registration
from services.runtime.settings import ServiceSettings


class FacemeshSettings(ServiceSettings):
    port: int = Field(BY_NAME["facemesh"].port, description="gRPC port.")
    model: str = Field("facemesh", description="The face mesh model (a folder of model-repo/).")


def to_proto(result: FacemeshResult) -> analysis_pb2.FacemeshResult:
    pose = result.pose
    return analysis_pb2.FacemeshResult(
        pose=analysis_pb2.Pose(yaw=pose.yaw, pitch=pose.pitch, roll=pose.roll),
        landmarks=[common_pb2.Point(x=float(x), y=float(y)) for x, y in result.mesh.points[:, :2]],
        presence=result.mesh.presence,
    )


class FacemeshServicer(CropServicer, analysis_pb2_grpc.FacemeshServicer):
    async def Analyze(
        self, request: common_pb2.CropsRequest, context: grpc.aio.ServicerContext
    ) -> analysis_pb2.FacemeshResponse:
        results = await self.predict(request, context)
        return analysis_pb2.FacemeshResponse(results=[to_proto(r) for r in results], model=self.info.models[0])


def build(settings: FacemeshSettings) -> list[Registration]:
    loaded = load_model(settings.model_repo, settings.model, settings.backend_options())
    mesh = FaceMesh(loaded)
    service = analysis_pb2.DESCRIPTOR.services_by_name["Facemesh"]
    return [
        crop_service(
            FacemeshServicer,
            mesh.predict,
            [loaded],
            settings,
            service,
            analysis_pb2_grpc.add_FacemeshServicer_to_server,
            specs=[mesh.crop],  # one crop, but the points need its to_image: the model takes Crops
        )
    ]
