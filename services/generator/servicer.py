"""Generator gRPC servicer: proto ↔ numpy around FaceGenerator."""

from __future__ import annotations

import asyncio
import secrets

import grpc
from faceplane.v1 import common_pb2, generator_pb2, generator_pb2_grpc
from pydantic import Field

from services.catalogue import BY_NAME
from services.generator.model import MAX_COUNT, FaceGenerator
from services.runtime.analysis import model_info
from services.runtime.crops import crop_to_proto
from services.runtime.error_codes import ErrorCode
from services.runtime.errors import ServiceError
from services.runtime.modelrepo import load_model
from services.runtime.server import Registration
from services.runtime.settings import ServiceSettings


class GeneratorSettings(ServiceSettings):
    port: int = Field(BY_NAME["generator"].port, description="gRPC port.")
    model: str = Field("dcgan_faces", description="The face generator model (a folder of model-repo/).")


class GeneratorServicer(generator_pb2_grpc.GeneratorServicer):
    def __init__(self, generator: FaceGenerator, model: common_pb2.ModelInfo) -> None:
        self.generator = generator
        self.model = model

    async def Describe(
        self, request: common_pb2.DescribeRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.ServiceInfo:
        return common_pb2.ServiceInfo(models=[self.model])

    async def Generate(
        self, request: generator_pb2.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> generator_pb2.GenerateResponse:
        if not 1 <= request.count <= MAX_COUNT:
            raise ServiceError(f"count must be 1..{MAX_COUNT}", code=ErrorCode.INVALID_COUNT)
        seed = request.seed if request.HasField("seed") else secrets.randbits(62)
        faces = await asyncio.to_thread(self.generator.generate, request.count, seed)  # BackendError: model_unavailable
        return generator_pb2.GenerateResponse(
            images=[crop_to_proto("generated", face) for face in faces], seed=seed, model=self.model
        )


def build(settings: GeneratorSettings) -> list[Registration]:
    loaded = load_model(settings.model_repo, settings.model_folder(settings.model), settings.backend_options())
    generator = FaceGenerator(loaded)
    servicer = GeneratorServicer(generator, model_info(loaded, settings.backend))
    name = generator_pb2.DESCRIPTOR.services_by_name["Generator"].full_name
    add = generator_pb2_grpc.add_GeneratorServicer_to_server
    return [Registration(servicer, add, name, warm_up=lambda: generator.generate(1, seed=0))]
