"""MTCNN through ONNX Runtime on real photos: one face, a close-up, ten small faces, no face."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from services.detector.model import MtcnnDetector, nms
from services.runtime.modelrepo import load_model
from tests import images

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def detector() -> MtcnnDetector:
    return MtcnnDetector(load_model(REPO / "model-repo", "mtcnn"))


def iou(a: np.ndarray, b: tuple[float, float, float, float]) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_astronaut_has_one_face_where_dlib_finds_it(detector: MtcnnDetector) -> None:
    faces = detector.detect(images.astronaut())
    assert len(faces) == 1
    assert faces[0].score > 0.99
    assert iou(faces[0].box, images.ASTRONAUT_FACE) > 0.5
    left_eye, right_eye, nose, mouth_left, mouth_right = faces[0].landmarks
    assert left_eye[0] < nose[0] < right_eye[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])
    x1, y1, x2, y2 = faces[0].box
    assert all(x1 <= x <= x2 and y1 <= y <= y2 for x, y in faces[0].landmarks)


def test_close_up_selfie(detector: MtcnnDetector) -> None:
    faces = detector.detect(images.selfie())
    assert len(faces) == 1
    _, y1, _, y2 = faces[0].box
    assert (y2 - y1) > 400  # the face fills most of the 800 px frame


def test_group_photo_with_ten_small_faces(detector: MtcnnDetector) -> None:
    image, count = images.group_of_ten()
    faces = detector.detect(image)
    assert len(faces) == count
    heights = [f.box[3] - f.box[1] for f in faces]
    assert max(heights) < 70, "the faces in this photo are all small"


def test_no_face(detector: MtcnnDetector) -> None:
    assert detector.detect(images.no_face()) == []


def test_min_confidence_filters(detector: MtcnnDetector) -> None:
    image, _ = images.group_of_ten()
    loose = detector.detect(image, min_confidence=0.7)
    strict = detector.detect(image, min_confidence=0.9999)
    assert len(strict) < len(loose)
    assert all(f.score >= 0.9999 for f in strict)


def test_huge_image_is_shrunk_and_boxes_mapped_back(detector: MtcnnDetector) -> None:
    big = np.asarray(np.kron(images.astronaut(), np.ones((4, 4, 1), dtype=np.uint8)))  # 2048×2048, face ×4
    faces = detector.detect(big)
    assert len(faces) == 1
    assert iou(faces[0].box / 4, images.ASTRONAUT_FACE) > 0.5


def test_nms_keeps_the_best_of_overlapping_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], dtype=np.float32)
    scores = np.array([0.8, 0.9, 0.7], dtype=np.float32)
    assert nms(boxes, scores, 0.5).tolist() == [1, 2]
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []
