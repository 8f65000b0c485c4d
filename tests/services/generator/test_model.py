"""The DCGAN generator: shapes, determinism by seed, and that it does not collapse to one image."""

from __future__ import annotations

import numpy as np
import pytest

from services.generator.model import FaceGenerator
from tests.services.conftest import model


@pytest.fixture(scope="module")
def generator() -> FaceGenerator:
    return FaceGenerator(model("dcgan_faces"))


def test_same_seed_same_faces_other_seed_other_faces(generator: FaceGenerator) -> None:
    a, b, c = generator.generate(8, seed=7), generator.generate(8, seed=7), generator.generate(8, seed=8)
    assert a.shape == (8, 64, 64, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert np.abs(a.astype(int) - c).mean() > 10


def test_a_batch_is_diverse_and_not_blank(generator: FaceGenerator) -> None:
    faces = generator.generate(16, seed=0).astype(np.float32)
    assert faces.std() > 20  # images, not a flat colour
    pairwise = [np.abs(faces[i] - faces[j]).mean() for i in range(16) for j in range(i + 1, 16)]
    assert min(pairwise) > 5  # no two identical faces: no mode collapse within a batch


@pytest.mark.parametrize("count", [0, 65])
def test_count_is_bounded(generator: FaceGenerator, count: int) -> None:
    with pytest.raises(ValueError):
        generator.generate(count, seed=0)


def test_faces_fill_their_frame(generator: FaceGenerator) -> None:
    """Faces like the aligned training faces, not small faces in a black frame (what a naive CelebA + UTKFace mix
    learns from UTKFace's tight crops: 31 of these 64). Black = no channel above 10; 6% of real CelebA crops have
    more than half their 6 px border black (the aligner's frame where a photo ends)."""
    faces = generator.generate(64, seed=0)
    ring = np.zeros(faces.shape[1:3], bool)
    ring[:6], ring[-6:], ring[:, :6], ring[:, -6:] = True, True, True, True
    black_border = (faces.max(axis=3) <= 10)[:, ring].mean(axis=1)
    assert (black_border > 0.5).sum() <= 8, f"{(black_border > 0.5).sum()} of 64 faces framed in black"
