"""What every crop-analysis servicer does around its model: check the crops, run the model off the event loop,
and describe itself. Its failures are exceptions with codes (CropError, BackendError), answered by the server's
ErrorInterceptor.

A service takes one crop spec (its first model's [crop]) and its model an (N, size, size, 3) uint8 batch, batched
across requests; or it names a list of specs (several crops per face, or one whose results need to know where the
crop lies in the image) and its model takes Crops: each spec's batch and to_image matrices, one request per model
call (DynamicBatcher concatenates single arrays only)."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import grpc
import numpy as np
from faceplane.v1 import common_pb2
from google.protobuf.descriptor import ServiceDescriptor

from services.runtime.batching import DynamicBatcher
from services.runtime.crops import Crops, crops_to_batch, crops_to_batches, spec_to_proto
from services.runtime.modelrepo import CropConfig, LoadedModel
from services.runtime.server import Registration
from services.runtime.settings import ServiceSettings

T = TypeVar("T")
ModelRunner = Callable[[np.ndarray], Awaitable[list[T]]]
CropsRunner = Callable[[Crops], Awaitable[list[T]]]  # a service of a list of specs: one result per face


def model_info(model: LoadedModel, backend: str) -> common_pb2.ModelInfo:
    return common_pb2.ModelInfo(name=model.config.name, version=model.config.version, backend=backend)


def service_info(
    models: Sequence[common_pb2.ModelInfo], crop: CropConfig | Sequence[CropConfig]
) -> common_pb2.ServiceInfo:
    specs = [crop] if isinstance(crop, CropConfig) else crop
    return common_pb2.ServiceInfo(models=models, crops=[spec_to_proto(c) for c in specs])


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


async def predict_crops(
    crops: Sequence[common_pb2.FaceCrop],
    crop: CropConfig | Sequence[CropConfig],
    run: Callable[[Any], Awaitable[list[T]]],
) -> list[T]:
    """Run the model on the request's crops: for one spec as one (N, size, size, 3) uint8 batch (or part of a larger
    one), for a list of specs as Crops (the crops face-major, one result per face); raises CropError
    (`invalid_crop`) for crops the model cannot take, BackendError (`model_unavailable`) when it fails."""
    if isinstance(crop, CropConfig):
        return await run(crops_to_batch(crops, crop))
    return await run(crops_to_batches(crops, crop))


class CropServicer:
    """The shared half of every crop-analysis servicer: Describe, and the model run on a request's crops.

    A service's servicer inherits this and its generated base, and only builds its own response message. `crop`
    is one spec (the model takes arrays) or a list of them (the model takes Crops; one result per face).
    """

    def __init__(
        self,
        run: ModelRunner[Any] | CropsRunner[Any],
        crop: CropConfig | Sequence[CropConfig],
        info: common_pb2.ServiceInfo,
    ) -> None:
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


def blank_faces(specs: Sequence[CropConfig]) -> Crops:
    """One face of black crops, each the image itself: the warm-up input of a service of several specs."""
    identity = np.array([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    return Crops({s.name: blank_crops(s) for s in specs}, {s.name: identity for s in specs})


def crop_service(
    servicer_cls: type[CropServicer],
    predict: Callable[[Any], list[Any]],
    models: Sequence[LoadedModel],
    settings: ServiceSettings,
    service: ServiceDescriptor,
    add_to_server: Callable[[Any, grpc.aio.Server], None],
    specs: Sequence[CropConfig] | None = None,
) -> Registration:
    """Registration for a crop-analysis service. Without `specs` its crop and batching are the first model's and
    `predict` takes an (N, size, size, 3) batch; with `specs` (several crops per face, taken in that order, or one
    whose results need its to_image) `predict` takes Crops and answers one result per face."""
    crop: CropConfig | list[CropConfig]
    if specs is None:
        crop = required_crop(models[0])
        run: ModelRunner[Any] = model_runner(predict, models[0], settings)
        blank: np.ndarray | Crops = blank_crops(crop)
    else:
        crop = list(specs)
        if not crop or len({s.name for s in crop}) != len(crop):
            raise ValueError(f"{service.full_name}: crop specs need distinct names, and at least one")
        # One request per model call: DynamicBatcher concatenates arrays only, and at one request per call it just
        # times and counts what it runs (Crops' length: its faces).
        workers = settings.inference_workers or os.cpu_count() or 1
        run = DynamicBatcher(predict, models[0].config.name, 1, 0.0, workers)
        blank = blank_faces(crop)
    info = service_info([model_info(m, settings.backend) for m in models], crop)
    return Registration(servicer_cls(run, crop, info), add_to_server, service.full_name, warm_up=lambda: predict(blank))
