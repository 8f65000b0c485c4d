"""The embedder's own alignment step (services/embedder/shape.py): the numpy port of dlib's 5-point shape predictor
gives dlib's points, the chip map is dlib's, and crops cut on the detector's landmarks come out as dlib's chips."""

from __future__ import annotations

import dataclasses
from functools import cache
from pathlib import Path

import dlib
import numpy as np
import pytest

from services.detector.align import align_face
from services.detector.detectors import create_detector
from services.embedder.model import EmbeddingModel
from services.embedder.shape import ChipRefiner, ShapePredictor, chip_matrix, intensity
from services.runtime.modelrepo import LoadedModel, RefineConfig, load_model
from tests.images import astronaut, group_six
from tests.services.embedder.dlib_files import SHAPE_5, dlib_file

REPO = Path(__file__).resolve().parents[3] / "model-repo"


@cache
def resnet() -> LoadedModel:
    return load_model(REPO, "dlib_resnet")


@cache
def predictor() -> ShapePredictor:
    refine = resnet().config.refine
    assert refine is not None and resnet().directory is not None
    return ShapePredictor.load(resnet().directory / refine.predictor)


@cache
def dlib_shapes(which: str) -> tuple[np.ndarray, list]:
    """(image, [(rect, dlib's 5-point shape)]) with dlib's own detector, left to right."""
    image = astronaut() if which == "astronaut" else group_six()
    reference = dlib.shape_predictor(str(dlib_file(SHAPE_5)))
    rects = list(dlib.get_frontal_face_detector()(image, 1 if which == "astronaut" else 0))
    rects = rects[:1] if which == "astronaut" else rects  # the astronaut's second box is on her suit
    return image, [(r, reference(image, r)) for r in sorted(rects, key=lambda r: r.left())]


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)


@pytest.mark.parametrize("which", ["astronaut", "group_six"])
def test_numpy_predictor_gives_dlibs_points(which: str) -> None:
    image, shapes = dlib_shapes(which)
    boxes = np.array([[r.left(), r.top(), r.right(), r.bottom()] for r, _ in shapes], dtype=np.float64)
    ours = predictor()(intensity(np.repeat(image[None], len(boxes), axis=0)), boxes)
    expected = np.array([[[p.x, p.y] for p in s.parts()] for _, s in shapes], dtype=np.float64)
    np.testing.assert_array_equal(np.round(ours), expected)  # dlib rounds its points to whole pixels


def test_grey_is_dlibs() -> None:
    rgb = np.array([[[[255, 0, 0], [0, 255, 0], [10, 20, 31], [255, 255, 254]]]], dtype=np.uint8)
    np.testing.assert_array_equal(intensity(rgb)[0], dlib.as_grayscale(rgb[0]))


@pytest.mark.parametrize("which", ["astronaut", "group_six"])
def test_chip_matrix_is_dlibs_get_face_chip(which: str) -> None:
    import cv2

    image, shapes = dlib_shapes(which)
    for _, shape in shapes:
        points = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
        ours = cv2.warpAffine(image, chip_matrix(points, 150, 0.25), (150, 150), flags=cv2.INTER_LINEAR)
        theirs = dlib.get_face_chip(image, shape, size=150, padding=0.25)
        difference = np.abs(ours.astype(int) - theirs)
        assert difference.max() <= 1 and difference.mean() < 0.6  # rounding of the bilinear samples


@pytest.mark.parametrize("which", ["astronaut", "group_six"])
def test_refined_crops_embed_like_dlibs_chips(which: str) -> None:
    """YuNet's crops, refined by the embedder, against dlib's own chips: closer than the crops as cut (on the
    verification photos the mean cosine goes 0.9928 → 0.9986, card.md); a crop whose correction is beyond
    `max_change` (two turned heads of t1) goes to the network as cut."""
    image, shapes = dlib_shapes(which)
    crop = resnet().config.crop
    assert crop is not None
    detections = create_detector(load_model(REPO, "yunet")).detect(image)
    crops = []
    for rect, _ in shapes:
        centre = np.array([(rect.left() + rect.right()) / 2, (rect.top() + rect.bottom()) / 2])
        nearest = min(detections, key=lambda d: np.linalg.norm(d.landmarks.mean(0) - centre))
        crops.append(align_face(image, nearest.landmarks, crop.size, template=np.array(crop.template)))
    chips = np.stack([dlib.get_face_chip(image, s, size=150, padding=0.25) for _, s in shapes])
    refined, plain = EmbeddingModel(resnet()), EmbeddingModel(without_refine(resnet()))
    assert refined.refiner is not None
    reference = plain.embed(chips)  # dlib's own chips are already aligned: the network alone
    before, after = cosine(plain.embed(np.stack(crops)), reference), cosine(refined.embed(np.stack(crops)), reference)
    kept = refined.refiner.changes(np.stack(crops))[1] > refined.refiner.config.max_change
    assert kept.sum() == (2 if which == "group_six" else 0)
    np.testing.assert_allclose(after[kept], before[kept], atol=1e-6)
    assert after[~kept].min() >= 0.995 and (after[~kept] > before[~kept]).all(), (before, after)


def without_refine(model: LoadedModel) -> LoadedModel:
    return dataclasses.replace(model, config=model.config.model_copy(update={"refine": None}))


class FixedPoints:
    """A stand-in predictor that always answers the same points (crop pixels)."""

    def __init__(self, points: np.ndarray) -> None:
        self.points = points

    def __call__(self, grey: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        return np.repeat(self.points[None], len(grey), axis=0)


def refiner(points: np.ndarray, max_change: float = 0.2) -> ChipRefiner:
    config = RefineConfig(method="dlib_shape_5", predictor="-", box=(0.5, 0.5, 0.75), chip_size=150,
                          max_change=max_change)  # fmt: skip
    return ChipRefiner(FixedPoints(points), config)  # type: ignore[arg-type]


def dlib_points(size: int = 150, padding: float = 0.25) -> np.ndarray:
    from services.embedder.shape import DLIB_5_CHIP

    return (padding + DLIB_5_CHIP) / (2 * padding + 1) * size


def test_points_already_on_dlibs_chip_change_almost_nothing() -> None:
    crops = np.random.default_rng(0).integers(0, 256, (2, 150, 150, 3), dtype=np.uint8)
    matrices, changes = refiner(dlib_points()).changes(crops)
    np.testing.assert_allclose(matrices[0][:, :2], np.eye(2), atol=0.01)
    assert changes.max() < 0.01


def test_an_implausible_correction_leaves_the_crop_as_it_was() -> None:
    crops = np.random.default_rng(1).integers(0, 256, (1, 150, 150, 3), dtype=np.uint8)
    far = dlib_points() * 0.4 + 10  # a face a third of the size in a corner: no face where the box expects one
    np.testing.assert_array_equal(refiner(far)(crops), crops)
    assert not np.array_equal(refiner(dlib_points() + np.array([6, -4]))(crops), crops)  # a small shift is applied


def test_refine_section_is_checked() -> None:
    with pytest.raises(ValueError):
        RefineConfig(method="mtcnn", predictor="x.npz", box=(0.5, 0.5, 0.7), chip_size=150)
    with pytest.raises(ValueError):
        RefineConfig(method="dlib_shape_5", predictor="x.npz", box=(0.5, 0.5), chip_size=150)
    with pytest.raises(ValueError):
        RefineConfig(method="dlib_shape_5", predictor="x.npz", box=(0.5, 0.5, 0.7), chip_size=150, max_change=0)
