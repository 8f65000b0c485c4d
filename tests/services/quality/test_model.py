"""The face-quality model on real faces cut as the service path cuts them: a sharp, well-lit face scores above the
same face blurred, darkened or shrunk; sharpness and brightness follow what was done to the photo."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from services.quality.model import QualityModel, QualityParams, laplacian_variance
from services.runtime.modelrepo import ModelConfigError, params_of
from tests import images
from tests.services.conftest import model


@pytest.fixture(scope="module")
def quality() -> QualityModel:
    return QualityModel(model("quality_faceplane"))


def test_the_model_declares_the_embedders_crop() -> None:
    """The detector cuts one crop for both services, and the score is of the face the embedder sees."""
    assert model("quality_faceplane").config.crop == model("dlib_resnet").config.crop


def test_degraded_faces_score_lower_than_the_sharp_one(crops_for, quality: QualityModel) -> None:
    loaded = model("quality_faceplane")
    photo = images.astronaut()
    sharp, blurred, dark = (
        crops_for(loaded, image)[0]
        for image in (photo, cv2.GaussianBlur(photo, (0, 0), 5), (photo * 0.15).astype(np.uint8))
    )
    small = cv2.resize(cv2.resize(sharp, (20, 20), interpolation=cv2.INTER_AREA), (150, 150))
    good, *worse = quality.predict(np.stack([sharp, blurred, dark, small]))
    assert good.score > 0.8
    assert all(w.score < good.score - 0.1 for w in worse), [w.score for w in worse]
    assert worse[0].sharpness < 0.2 < good.sharpness and worse[2].sharpness < 0.2
    assert worse[1].brightness < 0.2 < good.brightness
    for r in (good, *worse):
        assert 0.0 <= r.score <= 1.0 and 0.0 <= r.sharpness <= 1.0 and 0.0 <= r.brightness <= 1.0


def test_a_black_crop_has_no_sharpness_and_no_brightness(quality: QualityModel) -> None:
    (r,) = quality.predict(np.zeros((1, 150, 150, 3), np.uint8))
    assert r.sharpness == 0.0 and r.brightness == 0.0


def test_laplacian_variance_is_zero_on_flat_and_high_on_edges() -> None:
    flat = np.full((1, 20, 20), 100.0, np.float32)
    edges = np.tile(np.array([0.0, 255.0], np.float32), (1, 20, 10))
    assert laplacian_variance(flat)[0] == 0.0 and laplacian_variance(edges)[0] > 1e4


def test_params_need_one_value_per_feature() -> None:
    loaded = model("quality_faceplane")
    params = loaded.config.params
    broken = loaded.config.model_copy(update={"params": {**params, "weights": params["weights"][:-1]}})
    with pytest.raises(ModelConfigError, match="one value per feature"):
        params_of(type(loaded)(broken, loaded.backends, loaded.card, loaded.directory), QualityParams)
