"""Every model in model-repo/ loads, its [params] pass its family's params class, and its card names its licence and
the sha256 of the files it describes; a bad [params] table stops the load, naming the folder and the key."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from services.agegender.model import age_gender_model
from services.detector.detectors import create_detector
from services.embedder.model import EmbeddingModel
from services.emotion.model import EmotionModel
from services.facemesh.model import FaceMesh
from services.generator.model import FaceGenerator
from services.liveness.model import LivenessModel
from services.quality.model import QualityModel
from services.runtime.backends import BackendOptions
from services.runtime.classifier import Classifier
from services.runtime.modelrepo import (
    LoadedModel,
    ModelConfigError,
    load_model,
    preferred_model,
    read_config,
    served_files,
)

REPO = Path(__file__).resolve().parents[1] / "model-repo"
MODELS = sorted(p.parent.name for p in REPO.glob("*/config.toml"))

# What each service's build() makes of the folder load_model read, which is where its [params] are checked (the
# attributes service makes a Classifier of each of its two folders). A new folder must be added here.
RUNNERS: dict[str, Callable[[LoadedModel], object]] = {
    "agegender_cydral": age_gender_model,
    "agegender_faceplane": age_gender_model,
    "agegender_faceplane_int8": age_gender_model,
    "celeba_attributes": Classifier,
    "celeba_attributes_int8": Classifier,
    "dcgan_faces": FaceGenerator,
    "dlib_resnet": EmbeddingModel,
    "dlib_resnet_int8": EmbeddingModel,
    "emotion_faceplane": EmotionModel,
    "emotion_faceplane_int8": EmotionModel,
    "emotion_faceplane_single": EmotionModel,
    "emotion_minixception": EmotionModel,
    "facemesh": FaceMesh,
    "mask_faceplane": Classifier,
    "mask_faceplane_int8": Classifier,
    "mask_faceplane_single": Classifier,
    "mask_mobilenetv2": Classifier,
    "minifasnet": LivenessModel,
    "mtcnn": create_detector,
    "quality_faceplane": QualityModel,
    "yunet": create_detector,
}


def test_there_are_models() -> None:
    assert "mtcnn" in MODELS


@pytest.mark.parametrize("name", MODELS)
def test_card_matches_the_artifacts(name: str) -> None:
    config = read_config(REPO / name)
    assert config.name == name
    card = (REPO / name / "card.md").read_text().lower()
    for heading in ("licence, code", "licence, weights", "accuracy we measured", "speed"):
        assert heading in card, f"{name}/card.md says nothing under {heading!r}"
    files = [*config.files.values(), *([config.refine.predictor] if config.refine else [])]
    for filename in files:
        digest = hashlib.sha256((REPO / name / filename).read_bytes()).hexdigest()
        assert digest[:8] in card and digest[-6:] in card, f"{name}/card.md does not give {filename}'s sha256"


def test_every_model_has_its_runner() -> None:
    assert set(RUNNERS) == set(MODELS)


@pytest.mark.parametrize("name", MODELS)
def test_model_loads_under_onnx_runtime_with_its_params(name: str) -> None:
    model = load_model(REPO, name)
    assert set(model.backends) == set(model.config.files)
    assert all(b.input_names and b.output_names for b in model.backends.values())
    RUNNERS[name](model)  # raises ModelConfigError on a [params] table its family's params class refuses


def folder_with(tmp_path: Path, name: str, line: str, replacement: str) -> Path:
    """A repository holding a copy of model-repo/<name> whose config.toml has the one line that starts with `line`
    replaced by `replacement` (lines; empty: deleted)."""
    folder = tmp_path / name
    folder.mkdir()
    for source in (REPO / name).iterdir():
        if source.name != "config.toml":
            (folder / source.name).symlink_to(source)
    lines = (REPO / name / "config.toml").read_text().splitlines()
    (at,) = [i for i, text in enumerate(lines) if text.startswith(line)]
    lines[at : at + 1] = replacement.splitlines()
    (folder / "config.toml").write_text("\n".join(lines) + "\n")
    return tmp_path


@pytest.mark.parametrize(
    ("name", "line", "replacement", "says"),
    [
        ("dlib_resnet", "threshold = ", "", "threshold: missing"),
        ("mtcnn", "factor = ", "factor = 0.709\nfactr = 0.7", "factr: unknown key"),
        ("agegender_faceplane", "age_output = ", "age_output = 3", "age_output: Input should be a valid string"),
        ("dcgan_faces", "latent_dim = ", 'latent_dim = "many"', "latent_dim: Input should be a valid integer"),
        ("dlib_resnet", "threshold = ", "threshold = 1.5", "threshold: Input should be less than or equal to 1"),
        ("dlib_resnet", "    [0.6173, 1.0]", "    [0.6173, 0.5], [0.8256, 0.562],", "fmr_table: fmr_table must rise"),
        ("emotion_minixception", "layout = ", 'layout = "NHCW"', "layout: Input should be 'NHWC' or 'NCHW'"),
        ("agegender_cydral", "age_weights = ", "age_weights = [3, 2, 1]", "age_weights: ages must"),
        ("mtcnn", "factor = ", "factor = 1.0", "factor: Input should be less than 1"),
        ("yunet", "landmark_offsets = ", "landmark_offsets = [[0.0, 0.0]]", "landmark_offsets: five (x, y) pairs"),
        ("celeba_attributes", "input_size = ", "input_sise = 64", "input_size: missing; input_sise: unknown key"),
        ("facemesh", "passes = ", "passes = 3", "passes: Input should be less than or equal to 2"),
    ],
)
def test_a_bad_params_table_stops_the_load_naming_folder_and_key(
    tmp_path: Path, name: str, line: str, replacement: str, says: str
) -> None:
    model = load_model(folder_with(tmp_path, name, line, replacement), name)
    with pytest.raises(ModelConfigError) as refused:
        RUNNERS[name](model)
    message = str(refused.value)
    assert message.startswith(f"{tmp_path / name / 'config.toml'} [params] (")
    assert says in message


def test_int8_variants_are_the_default_on_onnx_runtime_only() -> None:
    """`INT8` (on by default) picks `<model>_int8` where it exists and runs on the backend; the float model stays
    one setting away, and the model servers are never handed an in-process-only variant."""
    assert preferred_model(REPO, "emotion_faceplane", "onnx", int8=True) == "emotion_faceplane_int8"
    assert preferred_model(REPO, "emotion_faceplane", "onnx", int8=False) == "emotion_faceplane"
    assert preferred_model(REPO, "emotion_faceplane", "torch", int8=True) == "emotion_faceplane"
    assert preferred_model(REPO, "emotion_faceplane", "tfserving", int8=True) == "emotion_faceplane"
    assert preferred_model(REPO, "yunet", "onnx", int8=True) == "yunet"  # no variant
    with pytest.raises(ModelConfigError, match="runs on onnx only, not torch"):
        load_model(REPO, "emotion_faceplane_int8", BackendOptions(kind="torch"))
    served = served_files(REPO)
    assert "emotion_faceplane-model" in served and not any("_int8" in name for name in served)
