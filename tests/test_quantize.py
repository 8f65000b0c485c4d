"""The int8 variants of model-repo/ (model-repo/recipes/quantize.py): each loads through its service's own model class
and answers as its original does on real faces (the test photos' crops, cut as the service path cuts them)."""

from __future__ import annotations

import numpy as np
import pytest

from recipes.quantize import FAMILIES, MODEL_REPO, closeness, family_of, outputs, service_tensors
from services.runtime.modelrepo import load_model, read_config
from tests import images

VARIANTS = sorted(p.parent.name for p in MODEL_REPO.glob("*_int8/config.toml"))


def photos() -> list[tuple[bytes, bool]]:
    """Eight faces: the astronaut, her close-up, and the six of the group photo."""
    return [(images.encode(images.astronaut()), False), (images.encode(images.selfie()), False),
            (images.encode(images.group_six()), False)]  # fmt: skip


@pytest.mark.parametrize("name", VARIANTS)
def test_a_variant_keeps_its_originals_crop_labels_and_params(name: str) -> None:
    variant = read_config(MODEL_REPO / name)
    original = read_config(MODEL_REPO / name.removesuffix("_int8"))
    assert variant.name == name and variant.version.startswith(original.version)
    assert (variant.crop, variant.labels, variant.params, variant.batching, variant.files, variant.refine) == (
        original.crop, original.labels, original.params, original.batching, original.files, original.refine
    )  # fmt: skip


@pytest.mark.parametrize("name", VARIANTS)
def test_a_variant_answers_as_its_original_on_real_faces(name: str) -> None:
    original = name.removesuffix("_int8")
    family = FAMILIES[family_of(original)]
    family.runner(load_model(MODEL_REPO, name))  # the service's own class takes it ([params] checked)
    tensors = service_tensors(original, photos(), max_faces=6)
    for key, filename in read_config(MODEL_REPO / name).files.items():
        assert len(next(iter(tensors[key].values()))) == 8
        near = closeness(
            outputs(MODEL_REPO / original / filename, tensors[key]),
            outputs(MODEL_REPO / name / filename, tensors[key]),
            family.metric,
        )
        for figure, value in near.items():
            if figure.endswith("top-1 agreement"):
                assert value == 1.0, (key, near)
            elif figure.endswith("decisions agreeing"):  # ten attributes a face, one may sit at 0.5
                assert value >= 0.95, (key, near)
            elif figure.endswith("lowest cosine"):
                assert value > 0.99, (key, near)
            elif figure.endswith("largest change") and family.metric == "top1" and "age" not in figure:
                assert value < 0.15, (key, near)  # a probability
            elif figure.startswith("age") and figure.endswith("mean change"):
                assert value < 1.5, (key, near)  # years
        assert np.isfinite(list(near.values())).all()
