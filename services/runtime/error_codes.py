"""Every machine-readable error code a caller can receive, the one registry of them: its HTTP status, what it means,
and the gRPC status a service answers it with.

Services raise exceptions carrying these codes (`ServiceError`, services/runtime/errors.py, whose interceptor sends
the status and the code); the gateway's `ApiError` takes its HTTP status from here and passes a service's code on;
docs/api.md's error table is written from here (`python -m docs.generate`), so none of them can drift. A leaf module,
the standard library and grpc only: the gateway imports it (through gateway/error_codes.py) and no other service code.
"""

from __future__ import annotations

from enum import StrEnum

import grpc

# The trailing-metadata key under which a service sends its machine code with a failed call.
ERROR_CODE_KEY = "faceplane-error-code"

_INVALID = grpc.StatusCode.INVALID_ARGUMENT


class ErrorCode(StrEnum):
    """A code (its value is what goes on the wire), its HTTP status and meaning, and the gRPC status a service
    answers it with (None: only the gateway raises it)."""

    http_status: int
    meaning: str
    grpc_status: grpc.StatusCode | None

    def __new__(
        cls, value: str, http_status: int, meaning: str, grpc_status: grpc.StatusCode | None = None
    ) -> ErrorCode:
        member = str.__new__(cls, value)
        member._value_ = value
        member.http_status = http_status
        member.meaning = meaning
        member.grpc_status = grpc_status
        return member

    EMPTY_IMAGE = "empty_image", 400, "the image (field or body) is empty", _INVALID
    INVALID_JSON = "invalid_json", 400, "the body is not valid JSON"
    INVALID_MULTIPART = "invalid_multipart", 400, "the multipart body could not be parsed"
    HTTP_ERROR = "http_error", 400, "any other HTTP-level error; the status is the one the HTTP layer raised"
    INVALID_FRAME = (
        "invalid_frame",
        400,
        "a video stream message is text: frames are binary messages holding an image",
    )
    INVALID_HOST = "invalid_host", 400, "the `Host` header names a host the gateway does not serve (`ALLOWED_HOSTS`)"
    UNAUTHENTICATED = "unauthenticated", 401, "no API key was sent (`Authorization: Bearer …` or `X-API-Key`)"
    INVALID_API_KEY = "invalid_api_key", 401, "the API key is unknown or revoked"
    FORBIDDEN = "forbidden", 403, "the key lacks the route's scope, or may not use this collection"
    CROSS_ORIGIN = (
        "cross_origin",
        403,
        "a write (or a video stream) sent by a web page of another origin: `Origin` is not this gateway",
    )
    NOT_FOUND = (
        "not_found",
        404,
        "no such route, collection, subject, face or video job",
        grpc.StatusCode.NOT_FOUND,
    )
    METHOD_NOT_ALLOWED = "method_not_allowed", 405, "the route does not take this HTTP method"
    ALREADY_EXISTS = "already_exists", 409, "the subject already exists", grpc.StatusCode.ALREADY_EXISTS
    MODEL_MISMATCH = (
        "model_mismatch",
        409,
        "the collection was built with another embedding model; it is not searched",
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    FAILED_PRECONDITION = "failed_precondition", 409, "a service refused the call in its present state"
    PAYLOAD_TOO_LARGE = "payload_too_large", 413, "the body is over the upload cap (checked while it streams in)"
    IMAGE_TOO_LARGE = (
        "image_too_large",
        413,
        "the image's bytes or pixels are over the limit (decompression bombs are refused from the header)",
        _INVALID,
    )
    TOO_MANY_IMAGES = (
        "too_many_images",
        413,
        "more images in one request than the route takes (`POST /v1/cluster`: `CLUSTER_MAX_IMAGES`)",
    )
    VIDEO_TOO_LARGE = "video_too_large", 413, "the uploaded video's bytes are over `VIDEO_MAX_BYTES`"
    VIDEO_TOO_LONG = "video_too_long", 413, "the uploaded video is longer than `VIDEO_MAX_DURATION_S`"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type", 415, "the content type is not multipart, JSON or image/*"
    UNSUPPORTED_IMAGE = (
        "unsupported_image",
        415,
        "the data is not a JPEG, PNG, WebP, GIF, BMP or TIFF image",
        _INVALID,
    )
    UNSUPPORTED_VIDEO = (
        "unsupported_video",
        415,
        "the upload is not an MP4, MOV, WebM/Matroska or AVI video OpenCV can decode",
    )
    CORRUPT_VIDEO = "corrupt_video", 422, "the video is truncated or its frames cannot be decoded"
    CORRUPT_IMAGE = "corrupt_image", 422, "the image is truncated or cannot be decoded", _INVALID
    INVALID_IMAGE = "invalid_image", 422, "the image has no pixels", _INVALID
    MISSING_IMAGE = "missing_image", 422, "the image field is missing or is not a file upload / base64 string"
    INVALID_BASE64 = "invalid_base64", 422, "the image field is not valid base64"
    INVALID_FEATURES = "invalid_features", 422, "`features` names an unknown feature, or none"
    INVALID_REQUEST = "invalid_request", 422, "a query, form or body value is out of range or malformed"
    INVALID_ARGUMENT = "invalid_argument", 422, "the embedder refused an id, page token or `top_k`", _INVALID
    INVALID_CROP = "invalid_crop", 422, "an analysis service refused a crop (wrong size or layout)", _INVALID
    INVALID_CROP_SPEC = "invalid_crop_spec", 422, "the detector refused a crop specification", _INVALID
    TOO_MANY_CROP_SPECS = (
        "too_many_crop_specs",
        422,
        "more crop specifications than the detector takes in one call",
        _INVALID,
    )
    INVALID_MIN_CONFIDENCE = "invalid_min_confidence", 422, "`min_confidence` is outside [0, 1]", _INVALID
    INVALID_COUNT = "invalid_count", 422, "the generator's `count` is outside 1..64", _INVALID
    NO_FACE = "no_face", 422, "no face was found where one is needed (verify, enrol)"
    TOO_MANY_FACES = (
        "too_many_faces",
        422,
        "the images of one `POST /v1/cluster` hold more faces than it clusters (`CLUSTER_MAX_FACES`)",
    )
    MULTIPLE_FACES = "multiple_faces", 422, "more than one face in an enrolment photo, without `allow_multiple=true`"
    LOW_QUALITY = (
        "low_quality",
        422,
        "the enrolment photo's face quality is below the `min_quality` asked for; nothing was enrolled",
    )
    SPOOF_DETECTED = (
        "spoof_detected",
        422,
        "with `require_liveness=true`, the liveness service took a face for a presentation attack (a printed photo "
        "or a screen); its message names the score; nothing was enrolled or compared",
    )
    RATE_LIMITED = (
        "rate_limited",
        429,
        "the key's request rate is used up; `Retry-After` says when to retry (a video frame: its answer says)",
    )
    TOO_MANY_PIXELS = (
        "too_many_pixels",
        429,
        "the client's images in flight are over its pixel budget (`CLIENT_PIXEL_BUDGET`); retry shortly",
    )
    TOO_MANY_CONCURRENT = "too_many_concurrent", 429, "the key already has its maximum of requests in flight"
    INTERNAL_ERROR = (
        "internal_error",
        500,
        "a bug; never expected for anything a client sends (a service's bug: the gateway answers `<service>_failed`)",
        grpc.StatusCode.INTERNAL,
    )
    NOT_IMPLEMENTED = "not_implemented", 501, "the service does not implement the call"
    AUTH_UNAVAILABLE = (
        "auth_unavailable",
        503,
        "the key store (Redis) cannot be reached, or no connection to it came free in `KEY_STORE_POOL_WAIT_S`",
    )
    GALLERY_UNAVAILABLE = (
        "gallery_unavailable",
        503,
        "the gallery store (Redis) cannot be reached",
        grpc.StatusCode.UNAVAILABLE,
    )
    MODEL_UNAVAILABLE = (
        "model_unavailable",
        503,
        "a service's model (or its model server) cannot run",
        grpc.StatusCode.UNAVAILABLE,
    )
    SERVICE_UNAUTHENTICATED = (
        "service_unauthenticated",
        502,
        "a service refused a call without the right service token (the gateway's `SERVICE_TOKEN` is not the "
        "service's `AUTH_TOKEN`); the gateway answers it as `<service>_failed`",
        grpc.StatusCode.UNAUTHENTICATED,
    )
    DETECTION_FAILED = (
        "detection_failed",
        502,
        "the detector's network answered outside its model's layout (a wrong or damaged model file); the gateway "
        "answers it as `detector_failed`",
        grpc.StatusCode.INTERNAL,
    )


class ServiceCode(StrEnum):
    """The kinds of failure the gateway names after the service that failed: `detector_unavailable`,
    `embedder_failed`, `generator_not_configured`…"""

    http_status: int
    meaning: str

    def __new__(cls, value: str, http_status: int, meaning: str) -> ServiceCode:
        member = str.__new__(cls, value)
        member._value_ = value
        member.http_status = http_status
        member.meaning = meaning
        return member

    FAILED = "failed", 502, "the service answered with an error of its own"
    UNAVAILABLE = "unavailable", 503, "the service cannot be reached (or its circuit breaker is open)"
    TIMEOUT = (
        "timeout",
        504,
        "the service did not answer within its deadline (`…_DEADLINE_S`); the call is cancelled",
    )
    NOT_CONFIGURED = "not_configured", 503, "the route's service is not deployed (not in the gateway's `SERVICES`)"


def service_code(service: str, kind: ServiceCode) -> str:
    return f"{service}_{ServiceCode(kind).value}"


def status_of(code: str, default: int | None = None) -> int:
    """The HTTP status of `code`; an unregistered code is a bug unless the caller says what to fall back to."""
    if code in ErrorCode._value2member_map_:
        return ErrorCode(code).http_status
    for kind in ServiceCode:
        if code.endswith(f"_{kind.value}"):
            return kind.http_status
    if default is None:
        raise KeyError(f"unregistered error code {code!r}: add it to services/runtime/error_codes.py")
    return default
