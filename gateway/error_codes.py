"""Every machine-readable error code a client can receive, with its HTTP status: the one registry of them.

`ApiError` takes its status from here, and docs/api.md's error table is written from here (`python -m
docs.generate`), so the two cannot drift. Codes that services attach to their gRPC errors pass through the
gateway unchanged and are registered here too.
"""

from __future__ import annotations

from dataclasses import dataclass

# The trailing-metadata key under which a service sends its machine code (services/runtime/errors.py sets it; the
# gateway reads it, never imports service code).
ERROR_CODE_KEY = "faceplane-error-code"


@dataclass(frozen=True)
class ErrorCode:
    status: int
    meaning: str


CODES: dict[str, ErrorCode] = {
    "empty_image": ErrorCode(400, "the image (field or body) is empty"),
    "invalid_json": ErrorCode(400, "the body is not valid JSON"),
    "invalid_multipart": ErrorCode(400, "the multipart body could not be parsed"),
    "http_error": ErrorCode(400, "any other HTTP-level error; the status is the one the HTTP layer raised"),
    "invalid_frame": ErrorCode(400, "a video stream message is text: frames are binary messages holding an image"),
    "invalid_host": ErrorCode(400, "the `Host` header names a host the gateway does not serve (`ALLOWED_HOSTS`)"),
    "unauthenticated": ErrorCode(401, "no API key was sent (`Authorization: Bearer …` or `X-API-Key`)"),
    "invalid_api_key": ErrorCode(401, "the API key is unknown or revoked"),
    "forbidden": ErrorCode(403, "the key lacks the route's scope, or may not use this collection"),
    "cross_origin": ErrorCode(
        403, "a write (or a video stream) sent by a web page of another origin: `Origin` is not this gateway"
    ),
    "not_found": ErrorCode(404, "no such route, collection, subject or face"),
    "method_not_allowed": ErrorCode(405, "the route does not take this HTTP method"),
    "already_exists": ErrorCode(409, "the subject already exists"),
    "model_mismatch": ErrorCode(409, "the collection was built with another embedding model; it is not searched"),
    "failed_precondition": ErrorCode(409, "a service refused the call in its present state"),
    "payload_too_large": ErrorCode(413, "the body is over the upload cap (checked while it streams in)"),
    "image_too_large": ErrorCode(
        413, "the image's bytes or pixels are over the limit (decompression bombs are refused from the header)"
    ),
    "unsupported_media_type": ErrorCode(415, "the content type is not multipart, JSON or image/*"),
    "unsupported_image": ErrorCode(415, "the data is not a JPEG, PNG, WebP, GIF, BMP or TIFF image"),
    "corrupt_image": ErrorCode(422, "the image is truncated or cannot be decoded"),
    "invalid_image": ErrorCode(422, "the image has no pixels"),
    "missing_image": ErrorCode(422, "the image field is missing or is not a file upload / base64 string"),
    "invalid_base64": ErrorCode(422, "the image field is not valid base64"),
    "invalid_features": ErrorCode(422, "`features` names an unknown feature, or none"),
    "invalid_request": ErrorCode(422, "a query, form or body value is out of range or malformed"),
    "invalid_argument": ErrorCode(422, "the embedder refused an id, page token or `top_k`"),
    "invalid_crop": ErrorCode(422, "an analysis service refused a crop (wrong size or layout)"),
    "invalid_crop_spec": ErrorCode(422, "the detector refused a crop specification"),
    "too_many_crop_specs": ErrorCode(422, "more crop specifications than the detector takes in one call"),
    "invalid_min_confidence": ErrorCode(422, "`min_confidence` is outside [0, 1]"),
    "invalid_count": ErrorCode(422, "the generator's `count` is outside 1..64"),
    "no_face": ErrorCode(422, "no face was found where one is needed (verify, enrol)"),
    "multiple_faces": ErrorCode(422, "more than one face in an enrolment photo, without `allow_multiple=true`"),
    "rate_limited": ErrorCode(
        429, "the key's request rate is used up; `Retry-After` says when to retry (a video frame: its answer says)"
    ),
    "too_many_pixels": ErrorCode(
        429, "the client's images in flight are over its pixel budget (`CLIENT_PIXEL_BUDGET`); retry shortly"
    ),
    "too_many_concurrent": ErrorCode(429, "the key already has its maximum of requests in flight"),
    "internal_error": ErrorCode(500, "a bug; never expected for anything a client sends"),
    "not_implemented": ErrorCode(501, "the service does not implement the call"),
    "auth_unavailable": ErrorCode(
        503, "the key store (Redis) cannot be reached, or no connection to it came free in `KEY_STORE_POOL_WAIT_S`"
    ),
    "gallery_unavailable": ErrorCode(503, "the gallery store (Redis) cannot be reached"),
    "model_unavailable": ErrorCode(503, "a service's model (or its model server) cannot run"),
    "service_unauthenticated": ErrorCode(
        502,
        "a service refused a call without the right service token (the gateway's `SERVICE_TOKEN` is not the "
        "service's `AUTH_TOKEN`); the gateway answers it as `<service>_failed`",
    ),
}

# Codes named after the service that failed: `detector_unavailable`, `embedder_failed`, `generator_not_configured`…
SERVICE_CODES: dict[str, ErrorCode] = {
    "failed": ErrorCode(502, "the service answered with an error of its own"),
    "unavailable": ErrorCode(503, "the service cannot be reached (or its circuit breaker is open)"),
    "timeout": ErrorCode(504, "the service did not answer within its deadline (`…_DEADLINE_S`); the call is cancelled"),
    "not_configured": ErrorCode(503, "the route's service is not deployed (its URL setting is empty)"),
}


def status_of(code: str, default: int | None = None) -> int:
    """The HTTP status of `code`; an unregistered code is a bug unless the caller says what to fall back to."""
    if code in CODES:
        return CODES[code].status
    for suffix, entry in SERVICE_CODES.items():
        if code.endswith(f"_{suffix}"):
            return entry.status
    if default is None:
        raise KeyError(f"unregistered error code {code!r}: add it to gateway/error_codes.py")
    return default


def service_code(service: str, kind: str) -> str:
    if kind not in SERVICE_CODES:
        raise KeyError(kind)
    return f"{service}_{kind}"
