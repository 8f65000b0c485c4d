"""The liveness model on upstream's sample crops (model-repo/minifasnet/samples.npz: the crops YuNet's box gave of
upstream's three sample photos, F = attack, T = real, and PyTorch's softmax of them): the scores PyTorch gave, the
labels at the default threshold, the crops it asks the detector for, and a [params] table it cannot run refused."""

from __future__ import annotations

import numpy as np
import pytest

from services.liveness.model import REAL, SPOOF, LivenessModel
from services.runtime.crops import Crops
from services.runtime.modelrepo import LoadedModel, ModelConfigError
from tests.services.conftest import MODEL_REPO, model

NAME = "minifasnet"


@pytest.fixture(scope="module")
def loaded() -> LoadedModel:
    return model(NAME)


@pytest.fixture(scope="module")
def samples() -> dict[str, np.ndarray]:
    with np.load(MODEL_REPO / NAME / "samples.npz") as data:
        return dict(data)


def sample_crops(liveness: LivenessModel, samples: dict[str, np.ndarray]) -> Crops:
    batches = {spec.name: samples[f"crops_{key}"] for key, spec in zip(liveness.networks, liveness.specs, strict=True)}
    identity = np.tile(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), (len(samples["names"]), 1, 1))
    return Crops(batches, dict.fromkeys(batches, identity))


def test_it_asks_for_one_inside_box_crop_per_network_at_its_scale(loaded: LoadedModel) -> None:
    specs = LivenessModel(loaded).specs
    assert [(s.name, s.kind, s.size, s.scale, s.inside, s.square, s.level_eyes) for s in specs] == [
        ("minifasnet_v2", "box", 80, 2.7, True, False, False),
        ("minifasnet_v1se", "box", 80, 4.0, True, False, False),
    ]


def test_the_samples_score_as_pytorch_did_and_get_their_labels(
    loaded: LoadedModel, samples: dict[str, np.ndarray]
) -> None:
    liveness = LivenessModel(loaded)
    assert liveness.threshold == 0.5  # the default, config.toml (card.md says why)
    results = liveness.predict(sample_crops(liveness, samples))
    expected = np.mean([samples[f"probabilities_{k}"][:, 1] for k in liveness.networks], axis=0)
    np.testing.assert_allclose([r.score for r in results], expected, atol=1e-4)
    assert [str(n) for n in samples["names"]] == ["image_F1", "image_F2", "image_T1"]
    assert [r.label for r in results] == [SPOOF, SPOOF, REAL]
    assert results[0].score == pytest.approx(0.302, abs=1e-3)  # the high-quality print
    assert results[1].score < 0.01 and results[2].score > 0.999


def test_the_nuaa_calibrated_threshold_would_accept_the_print(
    loaded: LoadedModel, samples: dict[str, np.ndarray]
) -> None:
    """Why the default is 0.5 and not NUAA's least-ACER 0.0184 (a service setting away)."""
    liveness = LivenessModel(loaded, threshold=0.0184)
    assert [r.label for r in liveness.predict(sample_crops(liveness, samples))] == [REAL, SPOOF, REAL]


def test_more_faces_than_a_network_call_takes_are_run_in_chunks(
    loaded: LoadedModel, samples: dict[str, np.ndarray]
) -> None:
    liveness = LivenessModel(loaded)
    many = 2 * loaded.config.batching.max_batch_size + 3
    crops = sample_crops(liveness, samples)
    batches = {name: np.resize(batch, (many, *batch.shape[1:])) for name, batch in crops.batches.items()}
    scores = [r.score for r in liveness.predict(Crops(batches, crops.to_image))]
    once = [r.score for r in liveness.predict(crops)]
    np.testing.assert_allclose(scores, [once[i % 3] for i in range(many)], atol=1e-5)  # np.resize repeats them


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"scales": {"v2": 2.7}}, "scales: one per"),
        ({"real_index": 0}, "real_index"),
        ({"fusion": "max"}, "fusion"),
        ({"threshold": 1.5}, "threshold"),
        ({"input_layout": "NCHW"}, "input_layout"),
    ],
)
def test_a_params_table_it_cannot_run_is_refused(loaded: LoadedModel, params: dict, message: str) -> None:
    config = loaded.config.model_copy(update={"params": {**loaded.config.params, **params}})
    with pytest.raises(ModelConfigError, match=message):
        LivenessModel(LoadedModel(config, loaded.backends, loaded.card, loaded.directory))
