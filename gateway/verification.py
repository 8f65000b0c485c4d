"""POST /v1/verify: the largest face of each image, embedded once, compared by the embedder."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from faceplane.v1 import embedder_pb2

from gateway.analysis import DetectOptions, crop_spec_of, detect
from gateway.clients import Services, to_api_error
from gateway.error_codes import ErrorCode, ServiceCode, service_code
from gateway.errors import ApiError
from gateway.merge import face_json
from gateway.settings import Settings


async def verify(
    services: Services,
    settings: Settings,
    images: dict[str, bytes],
    skip_detection: bool,
    subject: tuple[str, str] | None,
) -> dict[str, Any]:
    """`images` holds image1 and image2, or only image1 when `subject` (collection, subject_id) is the other side."""
    embedder = services.require("embedder")
    try:
        spec = await crop_spec_of(services, settings, "embedder")
    except LookupError as exc:
        raise ApiError(service_code("embedder", ServiceCode.UNAVAILABLE), str(exc)) from exc
    options = DetectOptions(max_faces=1, skip_detection=skip_detection)
    detected = await asyncio.gather(*(detect(services, settings, data, options, [spec]) for data in images.values()))
    for name, result in zip(images, detected, strict=True):
        if not result.faces:
            raise ApiError(ErrorCode.NO_FACE, f"no face was found in '{name}'")
    faces = [result.faces[0] for result in detected]
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
