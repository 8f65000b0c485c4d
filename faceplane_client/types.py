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


class Quality(TypedDict):
    score: float
    sharpness: float
    brightness: float


class Pose(TypedDict):
    yaw: float  # degrees, + towards the image's right
    pitch: float  # + up
    roll: float  # + clockwise on screen


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
    quality: NotRequired[Quality]
    liveness: NotRequired[Label]  # "real" or "spoof", and the probability that the face is real
    pose: NotRequired[Pose]
    landmarks_dense: NotRequired[list[list[float]]]  # 468 [x, y] face mesh points, image pixels
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


class ClusteredFace(TypedDict):
    image: int  # the index of the image in the request
    box: Box


class Cluster(TypedDict):
    cluster_id: int
    members: list[ClusteredFace]


class Clustering(TypedDict):
    clusters: list[Cluster]
    noise: list[ClusteredFace]  # faces in no cluster
    threshold: float
