"""Proto → JSON for faces, and the per-face merge of what each analysis service answered."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from faceplane.v1 import analysis_pb2, common_pb2, detector_pb2, embedder_pb2

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


def _r(value: float, digits: int = 2) -> float:
    return round(float(value), digits)


def box_json(box: common_pb2.Box) -> dict[str, float]:
    return {"x": _r(box.x), "y": _r(box.y), "width": _r(box.width), "height": _r(box.height)}


def face_json(face: detector_pb2.DetectedFace) -> dict[str, Any]:
    out: dict[str, Any] = {"box": box_json(face.box), "confidence": _r(face.confidence, 4), "landmarks": None}
    if face.HasField("landmarks"):
        out["landmarks"] = {
            n: [_r(getattr(face.landmarks, n).x), _r(getattr(face.landmarks, n).y)] for n in LANDMARK_NAMES
        }
    return out


def detect_json(response: detector_pb2.DetectResponse) -> dict[str, Any]:
    return {
        "image": {"width": response.width, "height": response.height},
        "faces": [face_json(f) for f in response.faces],
    }


def _emotion(r: analysis_pb2.EmotionResult, _: set[str]) -> dict[str, Any]:
    return {"emotion": {"label": r.label, "scores": {k: _r(v, 4) for k, v in sorted(r.scores.items())}}}


def _agegender(r: analysis_pb2.AgeGenderResult, features: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "age" in features:
        out["age"] = {"value": _r(r.age, 1)}
    if "gender" in features:
        out["gender"] = {"label": r.gender, "score": _r(r.gender_score, 4)}
    return out


def _attributes(r: analysis_pb2.AttributesResult, features: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "mask" in features:
        out["mask"] = {"label": r.mask, "score": _r(r.mask_score, 4)}
    if "attributes" in features:
        out["attributes"] = {k: _r(v, 4) for k, v in sorted(r.attributes.items())}
    return out


def _embedding(r: embedder_pb2.Embedding, _: set[str]) -> dict[str, Any]:
    return {"embedding": [float(v) for v in r.values]}


# service -> (RPC name, the repeated field of its response, per-face converter)
ANALYSIS_CALLS: dict[str, tuple[str, str, Callable[[Any, set[str]], dict[str, Any]]]] = {
    "emotion": ("Classify", "results", _emotion),
    "agegender": ("Predict", "results", _agegender),
    "attributes": ("Predict", "results", _attributes),
    "embedder": ("Embed", "embeddings", _embedding),
}


def merge_faces(
    faces: Sequence[dict[str, Any]],
    answers: Mapping[str, Sequence[Any]],
    failures: Mapping[str, str],
    features_of: Mapping[str, set[str]],
) -> list[dict[str, Any]]:
    """Add each service's per-face answer to its face; a failed service becomes an `errors` entry per feature."""
    merged = []
    for i, face in enumerate(faces):
        out = dict(face)
        for service, results in answers.items():
            out.update(ANALYSIS_CALLS[service][2](results[i], features_of[service]))
        errors = {feature: message for service, message in failures.items() for feature in sorted(features_of[service])}
        if errors:
            out["errors"] = errors
        merged.append(out)
    return merged
