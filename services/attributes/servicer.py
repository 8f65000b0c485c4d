"""Attributes gRPC servicer: proto ↔ numpy around AttributesModel."""

from __future__ import annotations

import grpc
from faceplane.v1 import analysis_pb2, analysis_pb2_grpc, common_pb2
from pydantic import Field

from services.attributes.model import AttributesModel
from services.catalogue import BY_NAME
from services.runtime.analysis import CropServicer, crop_service
from services.runtime.modelrepo import load_model
from services.runtime.server import Registration
from services.runtime.settings import ServiceSettings


class AttributesSettings(ServiceSettings):
    port: int = Field(BY_NAME["attributes"].port, description="gRPC port.")
    model: str = Field("celeba_attributes", description="The appearance-attributes model (a folder of model-repo/).")
    mask_model: str = Field("mask_faceplane", description="The mask model (a folder of model-repo/).")


class AttributesServicer(CropServicer, analysis_pb2_grpc.AttributesServicer):
    async def Analyze(
        self, request: common_pb2.CropsRequest, context: grpc.aio.ServicerContext
    ) -> analysis_pb2.AttributesResponse:
        results = await self.predict(request, context)
        return analysis_pb2.AttributesResponse(
            results=[
                analysis_pb2.AttributesResult(mask=r.mask, mask_score=r.mask_score, attributes=r.attributes)
                for r in results
            ],
            model=self.info.models[0],
        )


def build(settings: AttributesSettings) -> list[Registration]:
    attributes = load_model(settings.model_repo, settings.model_folder(settings.model), settings.backend_options())
    mask = load_model(settings.model_repo, settings.model_folder(settings.mask_model), settings.backend_options())
    service = analysis_pb2.DESCRIPTOR.services_by_name["Attributes"]
    predict = AttributesModel(attributes, mask).predict
    # Both nets take the attributes model's crop (the mask net resizes it to its own input).
    add = analysis_pb2_grpc.add_AttributesServicer_to_server
    return [crop_service(AttributesServicer, predict, [attributes, mask], settings, service, add)]
