"""The FER-2013 emotion models (ours: the default ensemble and its first member alone; mini-Xception) on real
faces, cut as the service path cuts them."""

from __future__ import annotations

import numpy as np
import pytest

from services.emotion.model import FER_LABELS, EmotionModel
from tests import images
from tests.services.conftest import model

MODELS = ["emotion_faceplane", "emotion_faceplane_single", "emotion_minixception"]


@pytest.mark.parametrize("name", MODELS)
def test_laughing_faces_are_happy_and_scores_are_a_distribution(crops_for, name: str) -> None:
    loaded = model(name)
    results = EmotionModel(loaded).predict(crops_for(loaded, images.group_six()))
    assert [r.label for r in results][2:4] == ["happy", "happy"]  # the two laughing men in t1.jpg
    for r in results:
        assert list(r.scores) == FER_LABELS
        assert sum(r.scores.values()) == pytest.approx(1.0, abs=1e-4)
        assert r.label == max(r.scores, key=r.scores.get)


@pytest.mark.parametrize("name", MODELS)
def test_labels_are_exactly_fer_2013s(name: str) -> None:
    assert model(name).config.labels == FER_LABELS
    assert np.unique(FER_LABELS).size == 7
