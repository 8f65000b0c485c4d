"""Response shapes, for the OpenAPI document (the routes build plain dicts that follow them)."""

from __future__ import annotations

from pydantic import BaseModel, Field, create_model

from services.catalogue import SERVICES


class Box(BaseModel):
    x: float
    y: float
    width: float
    height: float


class Landmarks(BaseModel):
    left_eye: tuple[float, float]
    right_eye: tuple[float, float]
    nose: tuple[float, float]
    mouth_left: tuple[float, float]
    mouth_right: tuple[float, float]


class ImageSize(BaseModel):
    width: int
    height: int


class Face(BaseModel):
    box: Box
    confidence: float
    landmarks: Landmarks | None = Field(
        default=None, description="without skip_detection; null (verify) or absent (analyze) with it"
    )


class DetectResponse(BaseModel):
    image: ImageSize
    faces: list[Face]


# A face with each catalogue feature (services/catalogue.py) as an optional field of its own shape.
AnalyzedFace = create_model(
    "AnalyzedFace",
    __base__=Face,
    **{
        f.name: (f.schema | None, Field(default=None, description=f.description))
        for service in SERVICES
        for f in service.features
    },
    errors=(dict[str, str] | None, Field(default=None, description="feature -> why it is missing for this face")),
)


class AnalyzeResponse(BaseModel):
    image: ImageSize
    faces: list[AnalyzedFace]


class VerifyResponse(BaseModel):
    similarity: float = Field(description="cosine similarity of the two faces' embeddings, in [-1, 1]")
    match: bool = Field(description="similarity ≥ threshold")
    threshold: float
    faces: list[Face] = Field(description="the face compared in image1 and in image2")


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


class Readiness(BaseModel):
    status: str = Field(description="ready | degraded | not_ready")
    services: dict[str, str]


ERROR_RESPONSES: dict[int | str, dict] = {
    status: {"model": ErrorResponse, "description": text}
    for status, text in {
        400: "empty or malformed body, or a `Host` the gateway does not serve",
        401: "no API key, or an unknown one",
        403: "the key lacks the scope or the collection, or a write from another origin's web page",
        404: "no such collection, subject or face",
        409: "already exists, or built with another embedding model",
        413: "image over the byte or pixel limit",
        415: "not a supported image or content type",
        422: "corrupt image or invalid parameters",
        429: "the key's rate or concurrency limit; `Retry-After` says when to retry",
        502: "a service failed",
        503: "a required service is unavailable",
        504: "a service did not answer within its deadline",
    }.items()
}
