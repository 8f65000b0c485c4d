"""`require_liveness=true` on /v1/verify and enrolment: the liveness service's crops of the faces compared or
enrolled, cut in the same Detect call as the embedder's crop, and 422 `spoof_detected` for a face it takes for a
presentation attack."""

from __future__ import annotations

from collections.abc import Mapping

import grpc
from faceplane.v1 import common_pb2, detector_pb2

from gateway.analysis import crop_specs_of
from gateway.clients import Services, to_api_error
from gateway.error_codes import ErrorCode, ServiceCode, service_code
from gateway.errors import ApiError
from gateway.settings import Settings

LIVENESS = "liveness"


async def liveness_specs(services: Services, settings: Settings) -> list[common_pb2.CropSpec]:
    """The crops the liveness service takes of each face, in its order (its Describe, cached): 503
    `liveness_not_configured` when it is not deployed, `liveness_unavailable` when it does not answer."""
    services.require(LIVENESS)
    try:
        return await crop_specs_of(services, settings, LIVENESS)
    except LookupError as exc:
        raise ApiError(service_code(LIVENESS, ServiceCode.UNAVAILABLE), str(exc)) from exc


def crops_of(face: detector_pb2.DetectedFace, specs: list[common_pb2.CropSpec]) -> list[common_pb2.FaceCrop]:
    """The face's crops of `specs`, in their order (each crop names its spec; the Detect call cut each name once)."""
    by_name = {crop.spec: crop for crop in face.crops}
    return [by_name[spec.name] for spec in specs]


async def require_live(
    services: Services,
    settings: Settings,
    faces: Mapping[str, detector_pb2.DetectedFace],
    specs: list[common_pb2.CropSpec],
    refused: str,
) -> None:
    """One liveness call for every face of `faces` (where each was found → the face, its crops cut with `specs`):
    422 `spoof_detected` naming the first face taken for an attack and its score; `refused` says what was not
    done."""
    stub = services.require(LIVENESS).stub
    request = common_pb2.CropsRequest(crops=[crop for face in faces.values() for crop in crops_of(face, specs)])
    try:
        reply = await stub.Analyze(request, timeout=settings.analysis_deadline_s)
    except grpc.aio.AioRpcError as exc:
        raise to_api_error(LIVENESS, exc) from exc
    for where, result in zip(faces, reply.results, strict=True):
        if result.label != "real":
            raise ApiError(
                ErrorCode.SPOOF_DETECTED,
                f"the face in {where} looks like a presentation attack (a printed photo or a screen): liveness score "
                f"{result.score:.3f} (the probability that it is real) is below the liveness service's threshold; "
                f"{refused}",
            )
