"""Real faces cut exactly as the service path cuts them: MTCNN, then each model's own crop spec."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from services.detector.align import align_face
from services.detector.model import MtcnnDetector
from services.runtime.modelrepo import LoadedModel, load_model

MODEL_REPO = Path(__file__).resolve().parents[2] / "model-repo"

CropsFn = Callable[[LoadedModel, np.ndarray], np.ndarray]


@pytest.fixture(scope="session")
def detector() -> MtcnnDetector:
    return MtcnnDetector(load_model(MODEL_REPO, "mtcnn"))


@pytest.fixture(scope="session")
def crops_for(detector: MtcnnDetector) -> CropsFn:
    """(N, size, size, 3) crops of every face in the image, left to right, in the model's crop spec."""

    def crops(model: LoadedModel, image: np.ndarray) -> np.ndarray:
        spec = model.config.crop
        assert spec is not None
        faces = sorted(detector.detect(image), key=lambda f: f.box[0])
        template = np.array(spec.template) if spec.template else None
        return np.stack([align_face(image, f.landmarks, spec.size, spec.padding, template) for f in faces])

    return crops


def model(name: str) -> LoadedModel:
    return load_model(MODEL_REPO, name)
