"""Galleries: subjects, enrolled faces and 1:N identification, through the embedder (which owns the store)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

import grpc
from faceplane.v1 import common_pb2, detector_pb2, embedder_pb2

from gateway.analysis import DetectOptions, crop_spec_of, detect
from gateway.clients import Services, to_api_error
from gateway.error_codes import ErrorCode, ServiceCode, service_code
from gateway.errors import ApiError
from gateway.liveness import crops_of, liveness_specs, require_live
from gateway.merge import box_json, face_json
from gateway.settings import Settings

T = TypeVar("T")


def subject_json(subject: embedder_pb2.Subject, with_faces: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"subject_id": subject.subject_id, "name": subject.name}
    if with_faces:
        out["face_ids"] = list(subject.face_ids)
    return out


async def _call(awaitable: Awaitable[T]) -> T:
    try:
        return await awaitable
    except grpc.aio.AioRpcError as exc:
        raise to_api_error("embedder", exc) from exc


async def _spec(services: Services, settings: Settings, name: str) -> common_pb2.CropSpec:
    try:
        return await crop_spec_of(services, settings, name)
    except LookupError as exc:
        raise ApiError(service_code(name, ServiceCode.UNAVAILABLE), str(exc)) from exc


async def _faces(
    services: Services,
    settings: Settings,
    data: bytes,
    options: DetectOptions,
    also: tuple[str, ...] = (),
    extra: tuple[common_pb2.CropSpec, ...] = (),
) -> detector_pb2.DetectResponse:
    """The faces with the embedder's crop first, then the crop of each service in `also`, then the `extra` specs
    (one crop per spec: a service that takes the embedder's crop, as the quality service does, shares it; pick a
    service's crops by spec name, `crops_of`)."""
    for name in also:
        services.require(name)  # `<name>_not_configured` when it is not deployed
    taken = [await _spec(services, settings, n) for n in ("embedder", *also)]
    specs = {spec.name: spec for spec in [*taken, *extra]}
    return await detect(services, settings, data, options, list(specs.values()))


class Gallery:
    """One request's view of the gallery RPCs, with the deadline and error mapping every route needs."""

    def __init__(self, services: Services, settings: Settings) -> None:
        self.services = services
        self.settings = settings
        self.stub = services.require("embedder").stub
        self.timeout = settings.analysis_deadline_s

    async def create_subject(self, collection: str, subject_id: str, name: str) -> dict[str, Any]:
        request = embedder_pb2.CreateSubjectRequest(collection=collection, subject_id=subject_id, name=name)
        return subject_json(await _call(self.stub.CreateSubject(request, timeout=self.timeout)))

    async def get_subject(self, collection: str, subject_id: str) -> dict[str, Any]:
        ref = embedder_pb2.SubjectRef(collection=collection, subject_id=subject_id)
        return subject_json(await _call(self.stub.GetSubject(ref, timeout=self.timeout)))

    async def list_subjects(self, collection: str, page_size: int, page_token: str) -> dict[str, Any]:
        request = embedder_pb2.ListSubjectsRequest(collection=collection, page_size=page_size, page_token=page_token)
        reply = await _call(self.stub.ListSubjects(request, timeout=self.timeout))
        return {
            "subjects": [subject_json(s, with_faces=False) for s in reply.subjects],
            "next_page_token": reply.next_page_token or None,
        }

    async def delete_subject(self, collection: str, subject_id: str) -> None:
        ref = embedder_pb2.SubjectRef(collection=collection, subject_id=subject_id)
        if not (await _call(self.stub.DeleteSubject(ref, timeout=self.timeout))).deleted:
            raise ApiError(ErrorCode.NOT_FOUND, f"no subject {subject_id!r} in collection {collection!r}")

    async def enrol(
        self,
        collection: str,
        subject_id: str,
        data: bytes,
        skip_detection: bool,
        allow_multiple: bool,
        min_quality: float | None = None,
        require_liveness: bool = False,
    ) -> dict[str, Any]:
        # Two faces are enough to refuse a group photo; with allow_multiple only the largest is needed.
        options = DetectOptions(max_faces=1 if allow_multiple else 2, skip_detection=skip_detection)
        also = ("quality",) if min_quality is not None else ()
        live = await liveness_specs(self.services, self.settings) if require_liveness else []
        detected = await _faces(self.services, self.settings, data, options, also, tuple(live))
        if not detected.faces:
            raise ApiError(ErrorCode.NO_FACE, "no face was found in the image")
        if len(detected.faces) > 1 and not allow_multiple:
            raise ApiError(
                ErrorCode.MULTIPLE_FACES,
                "more than one face in the image; send one, or allow_multiple=true for the largest",
            )
        face = detected.faces[0]  # the detector answers largest first
        if min_quality is not None:
            quality_spec = await _spec(self.services, self.settings, "quality")  # Describe's answer, cached
            await self.require_quality(crops_of(face, [quality_spec])[0], min_quality)
        if require_liveness:
            await require_live(self.services, self.settings, {"the image": face}, live, "nothing was enrolled")
        request = embedder_pb2.AddFacesRequest(collection=collection, subject_id=subject_id, crops=[face.crops[0]])
        reply = await _call(self.stub.AddFaces(request, timeout=self.timeout))
        return {"face_id": reply.face_ids[0], "box": box_json(face.box)}

    async def require_quality(self, crop: common_pb2.FaceCrop, min_quality: float) -> None:
        """Refuse (422 `low_quality`, naming the score) a face whose quality is below `min_quality`."""
        stub = self.services.require("quality").stub
        try:
            reply = await stub.Analyze(common_pb2.CropsRequest(crops=[crop]), timeout=self.timeout)
        except grpc.aio.AioRpcError as exc:
            raise to_api_error("quality", exc) from exc
        score = reply.results[0].score
        if score < min_quality:
            raise ApiError(
                ErrorCode.LOW_QUALITY,
                f"the face's quality score {score:.3f} is below min_quality {min_quality:g} (sharpness "
                f"{reply.results[0].sharpness:.3f}, brightness {reply.results[0].brightness:.3f}); nothing enrolled",
            )

    async def delete_face(self, collection: str, subject_id: str, face_id: str) -> None:
        request = embedder_pb2.DeleteFaceRequest(collection=collection, subject_id=subject_id, face_id=face_id)
        if not (await _call(self.stub.DeleteFace(request, timeout=self.timeout))).deleted:
            raise ApiError(ErrorCode.NOT_FOUND, f"no face {face_id!r} of subject {subject_id!r} in {collection!r}")

    async def identify(
        self, collection: str, data: bytes, options: DetectOptions, top_k: int, threshold: float | None
    ) -> dict[str, Any]:
        detected = await _faces(self.services, self.settings, data, options)
        faces = [face_json(f) for f in detected.faces]
        if not detected.faces:
            return {"image": {"width": detected.width, "height": detected.height}, "faces": []}
        request = embedder_pb2.IdentifyRequest(
            collection=collection, crops=[f.crops[0] for f in detected.faces], top_k=top_k, threshold=threshold
        )
        reply = await _call(self.stub.Identify(request, timeout=self.timeout))
        for face, result in zip(faces, reply.results, strict=True):
            face["matches"] = [
                {
                    "subject_id": m.subject_id,
                    "name": m.name,
                    "similarity": round(m.similarity, 4),
                    "false_match_probability": float(f"{m.false_match_probability:.3g}"),
                    "face_id": m.face_id,
                }
                for m in result.matches
            ]
        return {
            "image": {"width": detected.width, "height": detected.height},
            "faces": faces,
            "threshold": round(reply.threshold, 4),
            "gallery_faces": reply.gallery_faces,
        }
