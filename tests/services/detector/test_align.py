"""Landmark-based alignment: the transform is right, and an aligned face puts its landmarks on the template."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from services.detector.align import TEMPLATE, align_face, resize_whole, similarity_transform, template_points
from services.detector.model import MtcnnDetector
from services.runtime.modelrepo import load_model
from tests import images

REPO = Path(__file__).resolve().parents[3]


def test_similarity_transform_recovers_a_known_transform() -> None:
    angle, scale, shift = np.deg2rad(25), 1.7, np.array([12.0, -4.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src = TEMPLATE * 100
    dst = src @ rot.T + shift
    matrix = similarity_transform(src, dst)
    np.testing.assert_allclose(matrix[:, :2], rot, atol=1e-9)
    np.testing.assert_allclose(matrix[:, 2], shift, atol=1e-9)


def test_padding_shrinks_the_template_towards_the_centre() -> None:
    tight, padded = template_points(112, 0.0), template_points(112, 0.25)
    assert np.ptp(padded[:, 0]) == pytest.approx(np.ptp(tight[:, 0]) / 1.5)
    np.testing.assert_allclose(padded.mean(axis=0), (tight.mean(axis=0) + 0.25 * 112) / 1.5)


@pytest.mark.parametrize("rotation", [0, 20, -30])
def test_aligned_crop_puts_landmarks_on_the_template(rotation: int) -> None:
    from PIL import Image

    detector = MtcnnDetector(load_model(REPO / "model-repo", "mtcnn"))
    image = np.asarray(Image.fromarray(images.astronaut()).rotate(rotation, resample=Image.BICUBIC, center=(220, 120)))
    face = detector.detect(image)[0]
    crop = align_face(image, face.landmarks, size=160, padding=0.2)
    assert crop.shape == (160, 160, 3) and crop.dtype == np.uint8
    again = detector.detect(crop, min_confidence=0.5)
    assert len(again) == 1
    # Eyes level again whatever the rotation, and every landmark within a few pixels of where the template puts it.
    left_eye, right_eye = again[0].landmarks[:2]
    assert abs(left_eye[1] - right_eye[1]) < 4
    assert np.abs(again[0].landmarks - template_points(160, 0.2)).max() < 8


def test_resize_whole_keeps_rgb_uint8() -> None:
    out = resize_whole(images.astronaut(), 48)
    assert out.shape == (48, 48, 3) and out.dtype == np.uint8


def test_an_explicit_template_is_used_instead_of_the_standard_one() -> None:
    face = MtcnnDetector(load_model(REPO / "model-repo", "mtcnn")).detect(images.astronaut())[0]
    standard = align_face(images.astronaut(), face.landmarks, 96, padding=0.2)
    explicit = align_face(images.astronaut(), face.landmarks, 96, template=template_points(96, 0.2) / 96)
    np.testing.assert_array_equal(standard, explicit)
    shifted = align_face(images.astronaut(), face.landmarks, 96, template=template_points(96, 0.2) / 96 + 0.1)
    assert not np.array_equal(standard, shifted)
