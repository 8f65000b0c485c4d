"""The detectors the service can run, behind one interface, and which one a model folder holds."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from services.detector.model import Detection, MtcnnDetector
from services.detector.yunet import YunetDetector
from services.runtime.backends import BackendOptions
from services.runtime.modelrepo import LoadedModel, ModelConfig, load_model


class FaceDetector(Protocol):
    config: ModelConfig

    def detect(self, image: np.ndarray, min_confidence: float | None = None) -> list[Detection]: ...

    def warm_up(self) -> None: ...


# A model folder's `params.architecture`, or else its name, picks the code that runs it.
ARCHITECTURES: dict[str, type[MtcnnDetector] | type[YunetDetector]] = {"mtcnn": MtcnnDetector, "yunet": YunetDetector}


def create_detector(model: LoadedModel) -> FaceDetector:
    architecture = str(model.config.params.get("architecture", model.config.name))
    if architecture not in ARCHITECTURES:
        raise ValueError(f"model {model.config.name!r}: unknown detector architecture {architecture!r}")
    return ARCHITECTURES[architecture](model)


def configured_detector(model_repo: Path, options: BackendOptions | None = None) -> FaceDetector:
    """The detector the service would run with this environment (FACEPLANE_DETECTOR_MODEL), for benchmarks and
    recipes that run the pipeline in-process."""
    from services.detector.servicer import DetectorSettings  # the service's settings: its default model
    from services.runtime.settings import load_settings

    name = load_settings("detector", DetectorSettings).model
    return create_detector(load_model(model_repo, name, options))
