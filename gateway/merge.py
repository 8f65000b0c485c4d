"""Proto → JSON for faces, and the per-face merge of what each analysis service answered."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from faceplane.v1 import common_pb2, detector_pb2

from services.catalogue import feature, rounded

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


def box_json(box: common_pb2.Box) -> dict[str, float]:
    return {
        "x": rounded(box.x, 2),
        "y": rounded(box.y, 2),
        "width": rounded(box.width, 2),
        "height": rounded(box.height, 2),
    }


def face_json(face: detector_pb2.DetectedFace) -> dict[str, Any]:
    out: dict[str, Any] = {"box": box_json(face.box), "confidence": rounded(face.confidence), "landmarks": None}
    if face.HasField("landmarks"):
        out["landmarks"] = {
            n: [rounded(getattr(face.landmarks, n).x, 2), rounded(getattr(face.landmarks, n).y, 2)]
            for n in LANDMARK_NAMES
        }
    return out


def detect_json(response: detector_pb2.DetectResponse) -> dict[str, Any]:
    return {
        "image": {"width": response.width, "height": response.height},
        "faces": [face_json(f) for f in response.faces],
    }


def merge_faces(
    faces: Sequence[dict[str, Any]],
    answers: Mapping[str, Sequence[Any]],
    failures: Mapping[str, str],
    features_of: Mapping[str, set[str]],
) -> list[dict[str, Any]]:
    """Add each service's per-face answer to its face, as each asked-for feature's JSON (services/catalogue.py); a
    failed service becomes an `errors` entry per feature."""
    merged = []
    for i, face in enumerate(faces):
        out = dict(face)
        for service, results in answers.items():
            out.update({name: feature(name).to_json(results[i]) for name in sorted(features_of[service])})
        errors = {feature: message for service, message in failures.items() for feature in sorted(features_of[service])}
        if errors:
            out["errors"] = errors
        merged.append(out)
    return merged
