"""The per-face merge and feature parsing, as plain functions (the services that answer them come later)."""

from __future__ import annotations

import pytest
from faceplane.v1 import analysis_pb2, embedder_pb2

from gateway.analysis import parse_features
from gateway.errors import ApiError
from gateway.merge import merge_faces

FACES = [{"box": {"x": 0, "y": 0, "width": 10, "height": 10}, "confidence": 0.99, "landmarks": None}] * 2


def test_answers_land_on_their_faces_and_failures_become_errors() -> None:
    emotions = [
        analysis_pb2.EmotionResult(label="happy", scores={"happy": 0.9, "sad": 0.1}),
        analysis_pb2.EmotionResult(label="sad", scores={"happy": 0.2, "sad": 0.8}),
    ]
    agegender = [analysis_pb2.AgeGenderResult(age=31.26, gender="female", gender_score=0.97)] * 2
    embeddings = [embedder_pb2.Embedding(values=[0.6, 0.8])] * 2
    merged = merge_faces(
        FACES,
        {"emotion": emotions, "agegender": agegender, "embedder": embeddings},
        {"attributes": "the attributes service is unavailable"},
        {"emotion": {"emotion"}, "agegender": {"age"}, "embedder": {"embedding"}, "attributes": {"mask", "attributes"}},
    )
    assert [m["emotion"]["label"] for m in merged] == ["happy", "sad"]
    assert merged[0]["age"] == {"value": 31.3}
    assert "gender" not in merged[0]  # only the features asked for
    assert merged[1]["embedding"] == pytest.approx([0.6, 0.8])
    assert merged[0]["errors"] == {
        "attributes": "the attributes service is unavailable",
        "mask": "the attributes service is unavailable",
    }
    assert FACES[0].get("errors") is None  # the input is not modified


def test_parse_features() -> None:
    assert parse_features(" age, gender ,age") == {"age", "gender"}
    for bad in ("", ",", "age,x-ray"):
        with pytest.raises(ApiError) as err:
            parse_features(bad)
        assert err.value.status == 422 and err.value.code == "invalid_features"
