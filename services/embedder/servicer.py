"""Embedder gRPC servicer: embeddings and verification (the gallery RPCs arrive with the recognition issue)."""

from __future__ import annotations

import grpc
from faceplane.v1 import common_pb2, embedder_pb2, embedder_pb2_grpc

from services.embedder.model import EmbeddingModel, cosine
from services.runtime.analysis import CropServicer, model_info, required_crop, service_info
from services.runtime.errors import abort
from services.runtime.modelrepo import CropConfig, load_model
from services.runtime.server import Registration
from services.runtime.settings import ServiceSettings


class EmbedderSettings(ServiceSettings):
    port: int = 50052
    model: str = "dlib_resnet"


class EmbedderServicer(CropServicer, embedder_pb2_grpc.EmbedderServicer):
    def __init__(self, model: EmbeddingModel, crop: CropConfig, info: common_pb2.ServiceInfo) -> None:
        super().__init__(lambda crops: list(model.embed(crops)), crop, info)
        self.threshold = model.threshold

    async def Embed(
        self, request: common_pb2.CropsRequest, context: grpc.aio.ServicerContext
    ) -> embedder_pb2.EmbedResponse:
        vectors = await self.predict(request, context)
        return embedder_pb2.EmbedResponse(
            embeddings=[embedder_pb2.Embedding(values=v.tolist()) for v in vectors], model=self.info.models[0]
        )

    async def Verify(
        self, request: embedder_pb2.VerifyRequest, context: grpc.aio.ServicerContext
    ) -> embedder_pb2.VerifyResponse:
        if request.WhichOneof("other") != "face2":
            await abort(
                context, grpc.StatusCode.UNIMPLEMENTED, "not_implemented", "verify against a subject needs galleries"
            )
        first, second = await self.predict(common_pb2.CropsRequest(crops=[request.face, request.face2]), context)
        threshold = request.threshold if request.HasField("threshold") else self.threshold
        similarity = cosine(first, second)
        return embedder_pb2.VerifyResponse(
            similarity=similarity, match=similarity >= threshold, threshold=threshold, model=self.info.models[0]
        )


def build(settings: EmbedderSettings) -> list[Registration]:
    loaded = load_model(settings.model_repo, settings.model, settings.backend, settings.intra_op_threads)
    crop = required_crop(loaded)
    servicer = EmbedderServicer(
        EmbeddingModel(loaded), crop, service_info([model_info(loaded, settings.backend)], crop)
    )
    name = embedder_pb2.DESCRIPTOR.services_by_name["Embedder"].full_name
    return [Registration(servicer, embedder_pb2_grpc.add_EmbedderServicer_to_server, name)]
