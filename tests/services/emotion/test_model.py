"""The FER-2013 emotion model on real faces, cut as the service path cuts them."""

from __future__ import annotations

import numpy as np
import pytest

from services.emotion.model import FER_LABELS, EmotionModel
from tests import images
from tests.services.conftest import model


def test_laughing_faces_are_happy_and_scores_are_a_distribution(crops_for) -> None:
    loaded = model("emotion_minixception")
    results = EmotionModel(loaded).predict(crops_for(loaded, images.group_six()))
    assert [r.label for r in results][2:4] == ["happy", "happy"]  # the two laughing men in t1.jpg
    for r in results:
        assert list(r.scores) == FER_LABELS
        assert sum(r.scores.values()) == pytest.approx(1.0, abs=1e-4)
        assert r.label == max(r.scores, key=r.scores.get)


def test_labels_are_exactly_fer_2013s() -> None:
    assert model("emotion_minixception").config.labels == FER_LABELS
    assert np.unique(FER_LABELS).size == 7
