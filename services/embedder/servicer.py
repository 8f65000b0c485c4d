"""Embedder gRPC servicer: embeddings, verification and the gallery, proto ↔ numpy/Gallery and nothing else."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
import numpy as np
import redis
from faceplane.v1 import common_pb2, embedder_pb2, embedder_pb2_grpc
from pydantic import Field

from services.catalogue import BY_NAME
from services.embedder.gallery import Gallery, Match, Subject
from services.embedder.model import EmbeddingModel, cosine
from services.embedder.openset import OpenSetDecision
from services.runtime.analysis import (
    CropServicer,
    ModelRunner,
    blank_crops,
    model_info,
    model_runner,
    required_crop,
    service_info,
)
from services.runtime.error_codes import ErrorCode
from services.runtime.modelrepo import CropConfig, load_model
from services.runtime.server import Registration
from services.runtime.settings import ServiceSettings

T = TypeVar("T")
# The health name under which the embedder reports its gallery store (Redis) reachable or not.
GALLERY_HEALTH = "faceplane.v1.Embedder/gallery"

# The gallery's own errors carry their codes (services/embedder/gallery.py); its store failing is redis's.
GALLERY_ERRORS = {redis.RedisError: ErrorCode.GALLERY_UNAVAILABLE}


class EmbedderSettings(ServiceSettings):
    port: int = Field(BY_NAME["embedder"].port, description="gRPC port.")
    model: str = Field("dlib_resnet", description="The embedding model (a folder of model-repo/).")
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis 8 with RediSearch, holding the galleries.")
    redis_timeout_s: float = Field(5.0, description="Deadline of each Redis command, seconds.")
    gallery_ef_runtime: int = Field(
        100,
        ge=1,
        description="HNSW search breadth (EF_RUNTIME) of identify in collections under 500,000 faces, and the floor "
        "above: larger collections are searched more broadly (200 from 500,000 faces, 300 from 1,000,000: "
        "EF_RUNTIME_BY_SIZE in services/embedder/gallery.py) to keep recall@1 ≥ 0.99. Redis's default (10) "
        "loses recall as galleries grow (docs/performance.md).",
    )
    identify_fpir: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="Open-set identification (opt-in): the target share of strangers (people never enrolled) who "
        "get any match from identify without an explicit threshold, e.g. 0.01. The threshold then grows with the "
        "collection's face count N so that each comparison's calibrated false-match rate is 1 − (1 − FPIR)^(1/N) "
        "(the model's fmr_table), up to the table's last similarity. 0 (the default): the model's fixed threshold "
        "(0.916) decides, until the cost in missed matches is measured (docs/models.md).",
    )


def _subject(s: Subject) -> embedder_pb2.Subject:
    return embedder_pb2.Subject(collection=s.collection, subject_id=s.subject_id, name=s.name, face_ids=s.face_ids)


def _match(m: Match, false_match_probability: float) -> embedder_pb2.Match:
    return embedder_pb2.Match(
        subject_id=m.subject_id,
        name=m.name,
        similarity=m.similarity,
        face_id=m.face_id,
        false_match_probability=false_match_probability,
    )


class EmbedderServicer(CropServicer, embedder_pb2_grpc.EmbedderServicer):
    def __init__(
        self,
        model: EmbeddingModel,
        run: ModelRunner[np.ndarray],
        gallery: Gallery,
        crop: CropConfig,
        info: common_pb2.ServiceInfo,
        decision: OpenSetDecision,
    ) -> None:
        super().__init__(run, crop, info)
        self.threshold = model.threshold
        self.gallery = gallery
        self.decision = decision

    async def _gallery(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)

    async def _embeddings(self, crops: Any, context: grpc.aio.ServicerContext) -> np.ndarray:
        return np.stack(await self.predict(common_pb2.CropsRequest(crops=crops), context))

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
        threshold = request.threshold if request.HasField("threshold") else self.threshold
        if request.WhichOneof("other") == "subject":
            (vector,) = await self._embeddings([request.face], context)
            ref = request.subject
            similarity = await self._gallery(self.gallery.subject_similarity, ref.collection, ref.subject_id, vector)
        else:
            first, second = await self._embeddings([request.face, request.face2], context)
            similarity = cosine(first, second)
        return embedder_pb2.VerifyResponse(
            similarity=similarity, match=similarity >= threshold, threshold=threshold, model=self.info.models[0]
        )

    async def CreateSubject(
        self, request: embedder_pb2.CreateSubjectRequest, context: grpc.aio.ServicerContext
    ) -> embedder_pb2.Subject:
        subject = await self._gallery(self.gallery.create_subject, request.collection, request.subject_id, request.name)
        return _subject(subject)

    async def GetSubject(
        self, request: embedder_pb2.SubjectRef, context: grpc.aio.ServicerContext
    ) -> embedder_pb2.Subject:
        return _subject(await self._gallery(self.gallery.get_subject, request.collection, request.subject_id))

    async def ListSubjects(
        self, request: embedder_pb2.ListSubjectsRequest, context: grpc.aio.ServicerContext
    ) -> embedder_pb2.ListSubjectsResponse:
        subjects, token = await self._gallery(
            self.gallery.list_subjects, request.collection, request.page_size, request.page_token
        )
        return embedder_pb2.ListSubjectsResponse(subjects=[_subject(s) for s in subjects], next_page_token=token)

    async def DeleteSubject(
        self, request: embedder_pb2.SubjectRef, context: grpc.aio.ServicerContext
    ) -> embedder_pb2.DeleteResponse:
        deleted = await self._gallery(self.gallery.delete_subject, request.collection, request.subject_id)
        return embedder_pb2.DeleteResponse(deleted=deleted)

    async def AddFaces(
        self, request: embedder_pb2.AddFacesRequest, context: grpc.aio.ServicerContext
    ) -> embedder_pb2.AddFacesResponse:
        vectors = await self._embeddings(request.crops, context)
        face_ids = await self._gallery(self.gallery.add_faces, request.collection, request.subject_id, vectors)
        return embedder_pb2.AddFacesResponse(face_ids=face_ids)

    async def DeleteFace(
        self, request: embedder_pb2.DeleteFaceRequest, context: grpc.aio.ServicerContext
    ) -> embedder_pb2.DeleteResponse:
        deleted = await self._gallery(self.gallery.delete_face, request.collection, request.subject_id, request.face_id)
        return embedder_pb2.DeleteResponse(deleted=deleted)

    async def Identify(
        self, request: embedder_pb2.IdentifyRequest, context: grpc.aio.ServicerContext
    ) -> embedder_pb2.IdentifyResponse:
        vectors = await self._embeddings(request.crops, context)
        threshold = request.threshold if request.HasField("threshold") else self.decision.threshold
        found = await self._gallery(self.gallery.search, request.collection, vectors, request.top_k or 1, threshold)
        probability = self.decision.false_match_probability
        return embedder_pb2.IdentifyResponse(
            results=[
                embedder_pb2.IdentifyResult(matches=[_match(m, probability(m.similarity, found.faces)) for m in ms])
                for ms in found.matches
            ],
            model=self.info.models[0],
            threshold=found.threshold,
            gallery_faces=found.faces,
        )


def build(settings: EmbedderSettings) -> list[Registration]:
    # The configured model itself, never its int8 variant (INT8): a collection is tied to the model that filled it,
    # and the threshold and fmr_table were calibrated on the float model's embeddings.
    loaded = load_model(settings.model_repo, settings.model, settings.backend_options())
    model = EmbeddingModel(loaded)
    # Connects lazily (the service starts without Redis); timeouts so a stalled Redis cannot hold the worker threads
    # that model calls share.
    client = redis.Redis.from_url(
        settings.redis_url,
        protocol=2,
        socket_timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
    )
    gallery = Gallery(
        client, loaded.config.name, loaded.config.version, model.dim, ef_runtime=settings.gallery_ef_runtime
    )
    crop = required_crop(loaded)
    run = model_runner(lambda crops: list(model.embed(crops)), loaded, settings)
    info = service_info([model_info(loaded, settings.backend)], crop)
    decision = OpenSetDecision(model.calibration, settings.identify_fpir, model.threshold)
    servicer = EmbedderServicer(model, run, gallery, crop, info, decision)
    name = embedder_pb2.DESCRIPTOR.services_by_name["Embedder"].full_name
    probes = {GALLERY_HEALTH: client.ping}
    add = embedder_pb2_grpc.add_EmbedderServicer_to_server
    return [
        Registration(servicer, add, name, probes, warm_up=lambda: model.embed(blank_crops(crop)), errors=GALLERY_ERRORS)
    ]
