"""The shapes of the REST answers (see the gateway's OpenAPI schema at /docs)."""

from __future__ import annotations

from typing import NotRequired, TypedDict


class Box(TypedDict):
    x: float
    y: float
    width: float
    height: float


class Label(TypedDict):
    label: str
    score: float


class Emotion(TypedDict):
    label: str
    scores: dict[str, float]


class Face(TypedDict):
    box: Box
    confidence: float
    landmarks: dict[str, list[float]] | None
    emotion: NotRequired[Emotion]
    age: NotRequired[dict[str, float]]
    gender: NotRequired[Label]
    mask: NotRequired[Label]
    attributes: NotRequired[dict[str, float]]
    embedding: NotRequired[list[float]]
    errors: NotRequired[dict[str, str]]


class Faces(TypedDict):
    image: dict[str, int]
    faces: list[Face]


class Verification(TypedDict):
    similarity: float
    match: bool
    threshold: float
    faces: list[Face]


class Match(TypedDict):
    subject_id: str
    name: str
    similarity: float
    face_id: str


class IdentifiedFace(Face):
    matches: list[Match]


class Identification(TypedDict):
    image: dict[str, int]
    faces: list[IdentifiedFace]


class Subject(TypedDict):
    subject_id: str
    name: str
    face_ids: list[str]


class Enrolment(TypedDict):
    face_id: str
    box: Box
