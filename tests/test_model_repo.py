"""Every model in model-repo/ loads, and its card names its licence and the sha256 of the files it describes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from services.runtime.modelrepo import load_model, read_config

REPO = Path(__file__).resolve().parents[1] / "model-repo"
MODELS = sorted(p.parent.name for p in REPO.glob("*/config.toml"))


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


@pytest.mark.parametrize("name", MODELS)
def test_model_loads_under_onnx_runtime(name: str) -> None:
    model = load_model(REPO, name)
    assert set(model.backends) == set(model.config.files)
    assert all(b.input_names and b.output_names for b in model.backends.values())
