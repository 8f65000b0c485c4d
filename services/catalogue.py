"""The service catalogue: every service the gateway can call, the RPC it answers per face and the features it adds.

One entry per service. The gateway's clients, feature parsing, merging and response schema, its service URLs, and
the local launcher read this; the Helm values, compose and the images are checked against it by tests
(tests/deploy/). Adding a per-face analysis service is an entry here and its own folder `services/<name>/`
(model logic, a servicer answering `Analyze(CropsRequest)` with one typed result per face, `__main__.py`), plus
its chart and compose entries, which the tests then ask for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from faceplane.v1 import analysis_pb2_grpc, detector_pb2_grpc, embedder_pb2_grpc, generator_pb2_grpc
from pydantic import BaseModel


def rounded(value: float, digits: int = 4) -> float:
    return round(float(value), digits)


# The JSON shapes of the features in a face (the gateway's OpenAPI schema is built from them).


class Emotion(BaseModel):
    label: str
    scores: dict[str, float]


class Age(BaseModel):
    value: float


class Label(BaseModel):
    label: str
    score: float


class Quality(BaseModel):
    score: float
    sharpness: float
    brightness: float


class Pose(BaseModel):
    yaw: float
    pitch: float
    roll: float


@dataclass(frozen=True)
class Feature:
    """One value of `features=`: its key in each face, its JSON shape, and how one result of its service's per-crop
    RPC becomes that JSON."""

    name: str
    schema: Any
    to_json: Callable[[Any], Any]
    default: bool = True  # in /v1/analyze's default features
    description: str = ""


@dataclass(frozen=True)
class Service:
    """A gRPC service: its catalogue name (also its folder, its settings prefix FACEPLANE_<NAME>_ and its key in
    the gateway's SERVICES), its full gRPC name and stub, its default port, and, for a per-face service, the RPC
    it answers with one result per face (`results`, in request order) and the features those results carry."""

    name: str
    grpc_service: str
    stub: type
    port: int
    rpc: str | None = None
    results: str = "results"
    features: tuple[Feature, ...] = ()


def _emotion(r: Any) -> dict[str, Any]:
    return {"label": r.label, "scores": {k: rounded(v) for k, v in sorted(r.scores.items())}}


def _pose(r: Any) -> dict[str, float]:
    return {"yaw": rounded(r.pose.yaw, 2), "pitch": rounded(r.pose.pitch, 2), "roll": rounded(r.pose.roll, 2)}


SERVICES: tuple[Service, ...] = (
    Service("detector", "faceplane.v1.Detector", detector_pb2_grpc.DetectorStub, 50051),
    Service(
        "embedder",
        "faceplane.v1.Embedder",
        embedder_pb2_grpc.EmbedderStub,
        50052,
        rpc="Embed",  # the gallery routes embed through the same RPC
        results="embeddings",
        features=(
            Feature(
                "embedding",
                list[float],
                lambda r: [float(v) for v in r.values],
                default=False,
                description="the face's unit-length embedding (the embedder's model)",
            ),
        ),
    ),
    Service(
        "emotion",
        "faceplane.v1.Emotion",
        analysis_pb2_grpc.EmotionStub,
        50053,
        rpc="Analyze",
        features=(Feature("emotion", Emotion, _emotion, description="the most likely of seven emotions, and all"),),
    ),
    Service(
        "agegender",
        "faceplane.v1.AgeGender",
        analysis_pb2_grpc.AgeGenderStub,
        50054,
        rpc="Analyze",
        features=(
            Feature("age", Age, lambda r: {"value": rounded(r.age, 1)}, description="apparent age, years"),
            Feature(
                "gender",
                Label,
                lambda r: {"label": r.gender, "score": rounded(r.gender_score)},
                description="female or male, and its probability",
            ),
        ),
    ),
    Service(
        "attributes",
        "faceplane.v1.Attributes",
        analysis_pb2_grpc.AttributesStub,
        50055,
        rpc="Analyze",
        features=(
            Feature(
                "mask",
                Label,
                lambda r: {"label": r.mask, "score": rounded(r.mask_score)},
                description="mask or no_mask, and its probability",
            ),
            Feature(
                "attributes",
                dict[str, float],
                lambda r: {k: rounded(v) for k, v in sorted(r.attributes.items())},
                description="CelebA appearance attributes, each a probability",
            ),
        ),
    ),
    Service("generator", "faceplane.v1.Generator", generator_pb2_grpc.GeneratorStub, 50056),
    Service(
        "quality",
        "faceplane.v1.Quality",
        analysis_pb2_grpc.QualityStub,
        50059,
        rpc="Analyze",
        features=(
            Feature(
                "quality",
                Quality,
                lambda r: {
                    "score": rounded(r.score),
                    "sharpness": rounded(r.sharpness),
                    "brightness": rounded(r.brightness),
                },
                default=False,
                description="recognition quality 0..1 (good enough to enrol or trust a match?), sharpness, brightness",
            ),
        ),
    ),
    Service(
        "liveness",
        "faceplane.v1.Liveness",
        analysis_pb2_grpc.LivenessStub,
        50057,
        rpc="Analyze",
        features=(
            Feature(
                "liveness",
                Label,
                lambda r: {"label": r.label, "score": rounded(r.score)},
                default=False,  # two networks on two crops of every face: asked for, not run by default
                description="real or spoof (a printed photo or a screen), and the probability that the face is real",
            ),
        ),
    ),
    Service(
        "facemesh",
        "faceplane.v1.Facemesh",
        analysis_pb2_grpc.FacemeshStub,
        50060,
        rpc="Analyze",
        features=(  # both from one mesh of two network passes, ~25 ms a face: asked for, not run by default
            Feature(
                "pose",
                Pose,
                _pose,
                default=False,
                description="head pose in degrees as seen in the image: yaw (+ towards the image's right), pitch "
                "(+ up), roll (+ clockwise)",
            ),
            Feature(
                "landmarks_dense",
                list[tuple[float, float]],
                lambda r: [[round(p.x, 1), round(p.y, 1)] for p in r.landmarks],
                default=False,
                description="MediaPipe's 468 face mesh points [x, y] in image pixels",
            ),
        ),
    ),
)

BY_NAME: dict[str, Service] = {s.name: s for s in SERVICES}
# feature name → the service that provides it
FEATURES: dict[str, Service] = {f.name: s for s in SERVICES for f in s.features}


def feature(name: str) -> Feature:
    return next(f for f in FEATURES[name].features if f.name == name)


def default_features() -> list[str]:
    return [f.name for s in SERVICES for f in s.features if f.default]
