"""What every crop-analysis servicer does around its model: check the crops, run the model off the event loop,
and describe itself. Its failures are exceptions with codes (CropError, BackendError), answered by the server's
ErrorInterceptor."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import grpc
import numpy as np
from faceplane.v1 import common_pb2
from google.protobuf.descriptor import ServiceDescriptor

from services.runtime.batching import DynamicBatcher
from services.runtime.crops import crops_to_batch, spec_to_proto
from services.runtime.modelrepo import CropConfig, LoadedModel
from services.runtime.server import Registration
from services.runtime.settings import ServiceSettings

T = TypeVar("T")
ModelRunner = Callable[[np.ndarray], Awaitable[list[T]]]


def model_info(model: LoadedModel, backend: str) -> common_pb2.ModelInfo:
    return common_pb2.ModelInfo(name=model.config.name, version=model.config.version, backend=backend)


def service_info(models: Sequence[common_pb2.ModelInfo], crop: CropConfig) -> common_pb2.ServiceInfo:
    return common_pb2.ServiceInfo(models=models, crops=[spec_to_proto(crop)])


def required_crop(model: LoadedModel) -> CropConfig:
    if model.config.crop is None:
        raise ValueError(f"model {model.config.name} declares no [crop] in its config.toml")
    return model.config.crop


def model_runner(
    predict: Callable[[np.ndarray], list[T]], model: LoadedModel, settings: ServiceSettings
) -> DynamicBatcher[T]:
    """`predict` run in worker threads, batched across requests as the model's config.toml allows."""
    limits = model.config.batching
    size = limits.max_batch_size if settings.batching else 1
    workers = settings.inference_workers or os.cpu_count() or 1
    return DynamicBatcher(predict, model.config.name, size, limits.max_delay_ms, workers)


async def predict_crops(crops: Sequence[common_pb2.FaceCrop], crop: CropConfig, run: ModelRunner[T]) -> list[T]:
    """Run the model on the request's crops as one (N, size, size, 3) uint8 batch (or part of a larger one); raises
    CropError (`invalid_crop`) for crops the model cannot take, BackendError (`model_unavailable`) when it fails."""
    return await run(crops_to_batch(crops, crop))


class CropServicer:
    """The shared half of every crop-analysis servicer: Describe, and the model run on a request's crops.

    A service's servicer inherits this and its generated base, and only builds its own response message.
    """

    def __init__(self, run: ModelRunner[Any], crop: CropConfig, info: common_pb2.ServiceInfo) -> None:
        self._run = run
        self.crop = crop
        self.info = info

    async def Describe(
        self, request: common_pb2.DescribeRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.ServiceInfo:
        return self.info

    async def predict(self, request: common_pb2.CropsRequest, context: grpc.aio.ServicerContext) -> list[Any]:
        return await predict_crops(request.crops, self.crop, self._run)


def blank_crops(crop: CropConfig) -> np.ndarray:
    """One black crop of the model's size: the warm-up input."""
    return np.zeros((1, crop.size, crop.size, 3), np.uint8)


def crop_service(
    servicer_cls: type[CropServicer],
    predict: Callable[[np.ndarray], list[Any]],
    models: Sequence[LoadedModel],
    settings: ServiceSettings,
    service: ServiceDescriptor,
    add_to_server: Callable[[Any, grpc.aio.Server], None],
) -> Registration:
    """Registration for a crop-analysis service whose crop (and batching) is the first model's."""
    crop = required_crop(models[0])
    info = service_info([model_info(m, settings.backend) for m in models], crop)
    run = model_runner(predict, models[0], settings)
    servicer = servicer_cls(run, crop, info)
    return Registration(servicer, add_to_server, service.full_name, warm_up=lambda: predict(blank_crops(crop)))
