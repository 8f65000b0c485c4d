"""The request path: detector once, then the analysis services concurrently on the aligned crops."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import grpc
from faceplane.v1 import common_pb2, detector_pb2

from gateway.clients import Services, to_api_error
from gateway.error_codes import ErrorCode
from gateway.errors import ApiError
from gateway.merge import detect_json, merge_faces
from gateway.metrics import FEATURE_ERRORS
from gateway.settings import Settings
from gateway.tracing import span
from services.catalogue import BY_NAME, FEATURES, default_features

DEFAULT_FEATURES = ",".join(default_features())


def parse_features(value: str) -> set[str]:
    features = {f.strip() for f in value.split(",") if f.strip()}
    unknown = features - FEATURES.keys()
    if unknown or not features:
        raise ApiError(
            ErrorCode.INVALID_FEATURES,
            f"unknown features {sorted(unknown)}; choose from {', '.join(FEATURES)}" if unknown else "no features",
        )
    return features


@dataclass(frozen=True)
class DetectOptions:
    min_confidence: float | None = None  # None: the detector's default
    max_faces: int = 0
    skip_detection: bool = False


async def detect(
    services: Services, settings: Settings, data: bytes, options: DetectOptions, crops: list[common_pb2.CropSpec]
) -> detector_pb2.DetectResponse:
    detector = services.require("detector")
    max_faces = min(options.max_faces, settings.max_faces) if options.max_faces else settings.max_faces
    request = detector_pb2.DetectRequest(
        image=common_pb2.Image(data=data),
        min_confidence=options.min_confidence,
        max_faces=max_faces,
        crops=crops,
        skip_detection=options.skip_detection,
    )
    try:
        return await detector.stub.Detect(request, timeout=settings.detect_deadline_s)
    except grpc.aio.AioRpcError as exc:
        raise to_api_error("detector", exc) from exc


async def detect_faces(services: Services, settings: Settings, data: bytes, options: DetectOptions) -> dict[str, Any]:
    return detect_json(await detect(services, settings, data, options, crops=[]))


async def crop_specs_of(services: Services, settings: Settings, name: str) -> list[common_pb2.CropSpec]:
    """The crops the service takes of each face, in the order it takes them (its Describe, cached)."""
    service = services.get(name)
    if service is None:
        raise LookupError(f"the {name} service is not deployed")
    try:
        info = await service.describe(settings.analysis_deadline_s)
    except grpc.aio.AioRpcError as exc:
        raise LookupError(f"the {name} service is unavailable ({exc.code().name.lower()})") from exc
    if not info.crops:
        raise LookupError(f"the {name} service names no crop spec")
    return list(info.crops)


async def crop_spec_of(services: Services, settings: Settings, name: str) -> common_pb2.CropSpec:
    """The service's one crop (its first: the embedder's, for the verification and gallery routes)."""
    return (await crop_specs_of(services, settings, name))[0]


async def _call(
    services: Services, settings: Settings, name: str, crops: list[common_pb2.FaceCrop], faces: int
) -> list[Any]:
    """The service's results for `faces` faces, sent their crops face-major (each face's in the service's spec
    order): one result per face."""
    entry = BY_NAME[name]
    service = services.require(name)
    request = common_pb2.CropsRequest(crops=crops)
    response = await getattr(service.stub, entry.rpc)(request, timeout=settings.analysis_deadline_s)
    results = list(getattr(response, entry.results))
    if len(results) != faces:
        raise ValueError(f"{name} answered {len(results)} results for {faces} faces")
    return results


async def analyze(
    services: Services, settings: Settings, data: bytes, options: DetectOptions, features: set[str]
) -> dict[str, Any]:
    features_of: dict[str, set[str]] = {}
    for feature in features:
        features_of.setdefault(FEATURES[feature].name, set()).add(feature)
    names = sorted(features_of)

    failures: dict[str, str] = {}
    specs: dict[str, list[common_pb2.CropSpec]] = {}
    # Spans when tracing is on (gateway/tracing.py): each gRPC call below has its own, under these.
    with span("crop specs", {"faceplane.services": names}):
        described = await asyncio.gather(*(crop_specs_of(services, settings, n) for n in names), return_exceptions=True)
    for name, spec in zip(names, described, strict=True):
        if isinstance(spec, BaseException):
            failures[name] = str(spec)
        else:
            specs[name] = spec
    # Each crop is cut once, however many services take it (a spec's name stands for the spec).
    unique = list({spec.name: spec for taken in specs.values() for spec in taken}.values())
    detected = await detect(services, settings, data, options, unique)
    position = {spec.name: i for i, spec in enumerate(unique)}

    answers: dict[str, list[Any]] = {}
    if detected.faces and specs:
        calls = {
            name: _call(
                services,
                settings,
                name,
                [face.crops[position[spec.name]] for face in detected.faces for spec in taken],
                len(detected.faces),
            )
            for name, taken in specs.items()
        }
        with span("fan-out", {"faceplane.services": sorted(calls), "faceplane.faces": len(detected.faces)}):
            results = await asyncio.gather(*calls.values(), return_exceptions=True)
        for name, result in zip(calls, results, strict=True):
            if isinstance(result, grpc.aio.AioRpcError):
                services.get(name).info = None  # type: ignore[union-attr]  # ask again: it may have restarted
                failures[name] = f"the {name} service failed: {result.code().name.lower()}: {result.details()}"
            elif isinstance(result, BaseException):
                failures[name] = f"the {name} service failed: {result}"
            else:
                answers[name] = result
    for name in failures:
        FEATURE_ERRORS.labels(name).inc(len(detected.faces))
    body = detect_json(detected)
    body["faces"] = merge_faces(body["faces"], answers, failures, features_of)
    return body
