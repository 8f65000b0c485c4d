"""POST /v1/verify: the largest face of each image, embedded once, compared by the embedder (with
require_liveness, each face checked by the liveness service first)."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from faceplane.v1 import embedder_pb2

from gateway.analysis import DetectOptions, crop_spec_of, detect
from gateway.clients import Services, to_api_error
from gateway.error_codes import ErrorCode, ServiceCode, service_code
from gateway.errors import ApiError
from gateway.liveness import liveness_specs, require_live
from gateway.merge import face_json
from gateway.settings import Settings


async def verify(
    services: Services,
    settings: Settings,
    images: dict[str, bytes],
    skip_detection: bool,
    subject: tuple[str, str] | None,
    require_liveness: bool = False,
) -> dict[str, Any]:
    """`images` holds image1 and image2, or only image1 when `subject` (collection, subject_id) is the other side.
    With `require_liveness` every image's face must pass the liveness service (422 `spoof_detected` otherwise)."""
    embedder = services.require("embedder")
    try:
        spec = await crop_spec_of(services, settings, "embedder")
    except LookupError as exc:
        raise ApiError(service_code("embedder", ServiceCode.UNAVAILABLE), str(exc)) from exc
    live = await liveness_specs(services, settings) if require_liveness else []
    specs = list({s.name: s for s in (spec, *live)}.values())  # the embedder's first; each name cut once
    options = DetectOptions(max_faces=1, skip_detection=skip_detection)
    detected = await asyncio.gather(*(detect(services, settings, data, options, specs) for data in images.values()))
    for name, result in zip(images, detected, strict=True):
        if not result.faces:
            raise ApiError(ErrorCode.NO_FACE, f"no face was found in '{name}'")
    faces = [result.faces[0] for result in detected]
    if require_liveness:
        checked = {f"'{name}'": face for name, face in zip(images, faces, strict=True)}
        await require_live(services, settings, checked, live, "nothing was compared")
    request = embedder_pb2.VerifyRequest(face=faces[0].crops[0])
    if subject is None:
        request.face2.CopyFrom(faces[1].crops[0])
    else:
        request.subject.CopyFrom(embedder_pb2.SubjectRef(collection=subject[0], subject_id=subject[1]))
    try:
        reply = await embedder.stub.Verify(request, timeout=settings.analysis_deadline_s)
    except grpc.aio.AioRpcError as exc:
        raise to_api_error("embedder", exc) from exc
    return {
        "similarity": round(reply.similarity, 4),
        "match": reply.match,
        "threshold": round(reply.threshold, 4),
        "faces": [face_json(f) for f in faces],
    }
