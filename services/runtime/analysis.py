"""What every crop-analysis servicer does around its model: check the crops, run the model off the event loop,
turn failures into coded gRPC errors, and describe itself."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import grpc
import numpy as np
from faceplane.v1 import common_pb2
from google.protobuf.descriptor import ServiceDescriptor

from services.runtime.backends import BackendError
from services.runtime.crops import CropError, crops_to_batch, spec_to_proto
from services.runtime.errors import abort_invalid, abort_unavailable
from services.runtime.modelrepo import CropConfig, LoadedModel
from services.runtime.server import Registration

T = TypeVar("T")


def model_info(model: LoadedModel, backend: str) -> common_pb2.ModelInfo:
    return common_pb2.ModelInfo(name=model.config.name, version=model.config.version, backend=backend)


def service_info(models: Sequence[common_pb2.ModelInfo], crop: CropConfig) -> common_pb2.ServiceInfo:
    return common_pb2.ServiceInfo(models=models, crops=[spec_to_proto(crop)])


def required_crop(model: LoadedModel) -> CropConfig:
    if model.config.crop is None:
        raise ValueError(f"model {model.config.name} declares no [crop] in its config.toml")
    return model.config.crop


async def predict_crops(
    context: grpc.aio.ServicerContext,
    crops: Sequence[common_pb2.FaceCrop],
    crop: CropConfig,
    predict: Callable[[np.ndarray], list[T]],
) -> list[T]:
    """Run `predict` on the request's crops as one (N, size, size, 3) uint8 batch, in a worker thread."""
    try:
        batch = crops_to_batch(crops, crop)
    except CropError as exc:
        await abort_invalid(context, "invalid_crop", str(exc))
    try:
        return await asyncio.to_thread(predict, batch)
    except BackendError as exc:
        await abort_unavailable(context, "model_unavailable", str(exc))


class CropServicer:
    """The shared half of every crop-analysis servicer: Describe, and the model run on a request's crops.

    A service's servicer inherits this and its generated base, and only builds its own response message.
    """

    def __init__(
        self, predict: Callable[[np.ndarray], list[Any]], crop: CropConfig, info: common_pb2.ServiceInfo
    ) -> None:
        self._predict = predict
        self.crop = crop
        self.info = info

    async def Describe(
        self, request: common_pb2.DescribeRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.ServiceInfo:
        return self.info

    async def predict(self, request: common_pb2.CropsRequest, context: grpc.aio.ServicerContext) -> list[Any]:
        return await predict_crops(context, request.crops, self.crop, self._predict)


def crop_service(
    servicer_cls: type[CropServicer],
    predict: Callable[[np.ndarray], list[Any]],
    models: Sequence[LoadedModel],
    backend: str,
    service: ServiceDescriptor,
    add_to_server: Callable[[Any, grpc.aio.Server], None],
) -> Registration:
    """Registration for a crop-analysis service whose crop is the first model's."""
    crop = required_crop(models[0])
    info = service_info([model_info(m, backend) for m in models], crop)
    return Registration(servicer_cls(predict, crop, info), add_to_server, service.full_name)
