"""model-repo/dlib_resnet reproduces dlib's own face descriptor (dlib-bin, a dev dependency) on real faces, and our
pipeline (MTCNN + the model's crop template) lands close to dlib's own alignment."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import dlib
import numpy as np
import pytest

from services.detector.align import align_face
from services.detector.model import MtcnnDetector
from services.runtime.modelrepo import LoadedModel, load_model
from tests.images import astronaut, group_six
from tests.services.embedder.dlib_files import RESNET, SHAPE_5, dlib_file

REPO = Path(__file__).resolve().parents[3] / "model-repo"
# dlib's descriptor of the astronaut's chip, as recorded with dlib-bin 20.0.1.post1 (../shared/FACTS.md).
ASTRONAUT_START = [-0.0662784, 0.02092324, 0.01763653, -0.06417061, -0.15250617]
ASTRONAUT_NORM = 1.4572879


@cache
def model() -> LoadedModel:
    return load_model(REPO, "dlib_resnet")


def embed(crops: np.ndarray) -> np.ndarray:
    backend = model().backends["model"]
    return backend.run({backend.input_names[0]: crops})[backend.output_names[0]]


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)


@cache
def dlib_faces(which: str) -> tuple[np.ndarray, list]:
    """(image, dlib 5-point shapes) with dlib's own detector."""
    image = astronaut() if which == "astronaut" else group_six()
    predictor = dlib.shape_predictor(str(dlib_file(SHAPE_5)))
    detector = dlib.get_frontal_face_detector()
    # astronaut: the first (best) box at upsample 1, as recorded; the second is a weak false positive on the suit.
    rects = list(detector(image, 1))[:1] if which == "astronaut" else list(detector(image, 0))
    return image, [predictor(image, r) for r in sorted(rects, key=lambda r: r.left())]


def dlib_chips(which: str) -> np.ndarray:
    image, shapes = dlib_faces(which)
    return np.stack([dlib.get_face_chip(image, s, size=150, padding=0.25) for s in shapes])


@pytest.fixture(scope="module")
def reference() -> dlib.face_recognition_model_v1:
    return dlib.face_recognition_model_v1(str(dlib_file(RESNET)))


@pytest.mark.parametrize(("which", "faces"), [("astronaut", 1), ("group_six", 6)])
def test_onnx_matches_dlib_on_dlib_chips(which: str, faces: int, reference: dlib.face_recognition_model_v1) -> None:
    chips = dlib_chips(which)
    assert len(chips) == faces
    expected = np.array([reference.compute_face_descriptor(c) for c in chips], dtype=np.float32)
    got = embed(chips)
    assert got.shape == (faces, 128)
    assert cosine(got, expected).min() >= 0.999
    # The raw descriptor, not normalised: the service normalises it.
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), np.linalg.norm(expected, axis=1), rtol=1e-3)


def test_astronaut_descriptor_matches_the_recorded_one() -> None:
    got = embed(dlib_chips("astronaut"))[0]
    np.testing.assert_allclose(got[:5], ASTRONAUT_START, atol=1e-3)
    assert abs(np.linalg.norm(got) - ASTRONAUT_NORM) < 1e-3


def test_batch_of_one_equals_row_of_a_batch() -> None:
    chips = dlib_chips("group_six")
    np.testing.assert_allclose(embed(chips[2:3])[0], embed(chips)[2], atol=1e-5)


@pytest.mark.parametrize("which", ["astronaut", "group_six"])
def test_our_alignment_embeds_like_dlibs(which: str) -> None:
    """MTCNN landmarks warped onto the config's template give nearly dlib's embedding (mean 0.995 over 454 faces
    of the verification sets; the two detectors' landmarks disagree most on turned faces, one of t1's is 0.959)."""
    image, shapes = dlib_faces(which)
    crop = model().config.crop
    assert crop is not None and crop.size == 150
    detections = MtcnnDetector(load_model(REPO, "mtcnn")).detect(image)
    ours = []
    for shape in shapes:
        centre = np.array([[p.x, p.y] for p in shape.parts()]).mean(0)
        nearest = min(detections, key=lambda d: np.linalg.norm(d.landmarks.mean(0) - centre))
        ours.append(align_face(image, nearest.landmarks, crop.size, template=np.array(crop.template)))
    similarity = cosine(embed(np.stack(ours)), embed(dlib_chips(which)))
    assert similarity.min() >= 0.95 and similarity.mean() >= 0.975, similarity
