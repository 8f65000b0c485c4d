"""YuNet through ONNX Runtime (and the torch backend) on the real photos the MTCNN tests use: where the faces are,
the landmark order, the size cap, the padding, and what a broken network turns into."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from services.detector.detectors import create_detector
from services.detector.model import MtcnnDetector
from services.detector.yunet import (
    OUTPUTS,
    STRIDES,
    DetectorFailure,
    YunetDetector,
    YunetParams,
    decode,
    prepare,
    shift_landmarks,
)
from services.runtime.backends import BackendOptions
from services.runtime.modelrepo import load_model
from tests import images
from tests.services.detector.test_model import iou

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def yunet() -> YunetDetector:
    detector = create_detector(load_model(REPO / "model-repo", "yunet"))
    assert isinstance(detector, YunetDetector)
    return detector


@pytest.fixture(scope="module")
def mtcnn() -> MtcnnDetector:
    return MtcnnDetector(load_model(REPO / "model-repo", "mtcnn"))


def test_astronaut_has_one_face_where_dlib_finds_it(yunet: YunetDetector) -> None:
    faces = yunet.detect(images.astronaut())
    assert len(faces) == 1
    assert faces[0].score >= yunet.params.min_confidence
    assert iou(faces[0].box, images.ASTRONAUT_FACE) > 0.5
    x1, y1, x2, y2 = faces[0].box
    assert all(x1 <= x <= x2 and y1 <= y <= y2 for x, y in faces[0].landmarks)


def test_landmarks_come_in_our_order(yunet: YunetDetector, mtcnn: MtcnnDetector) -> None:
    """Left eye, right eye, nose, mouth left, mouth right (as seen in the image), point by point where MTCNN puts
    them: alignment and every crop stay as they were."""
    for image in (images.astronaut(), images.group_six()):
        ours = sorted(yunet.detect(image), key=lambda f: f.box[0])
        theirs = sorted(mtcnn.detect(image), key=lambda f: f.box[0])
        assert len(ours) == len(theirs) > 0
        for a, b in zip(ours, theirs, strict=True):
            left_eye, right_eye, nose, mouth_left, mouth_right = a.landmarks
            assert left_eye[0] < nose[0] < right_eye[0]
            assert mouth_left[0] < mouth_right[0]
            assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])
            width = b.box[2] - b.box[0]
            assert np.abs(a.landmarks - b.landmarks).max() < 0.15 * width


def test_group_photo_with_six_faces(yunet: YunetDetector) -> None:
    faces = yunet.detect(images.group_six())
    assert len(faces) == 6
    assert [f.score for f in faces] == sorted((f.score for f in faces), reverse=True)


def test_group_photo_with_ten_small_faces(yunet: YunetDetector) -> None:
    image, count = images.group_of_ten()
    faces = yunet.detect(image)
    assert len(faces) == count
    assert max(f.box[3] - f.box[1] for f in faces) < 70, "the faces in this photo are all small"


def test_close_up_selfie(yunet: YunetDetector) -> None:
    faces = yunet.detect(images.selfie())
    assert len(faces) == 1
    assert faces[0].box[3] - faces[0].box[1] > 400  # the face fills most of the 800 px frame


def test_no_face(yunet: YunetDetector) -> None:
    assert yunet.detect(images.no_face()) == []


def test_min_confidence_filters(yunet: YunetDetector) -> None:
    image, _ = images.group_of_ten()
    loose = yunet.detect(image, min_confidence=0.5)
    strict = yunet.detect(image, min_confidence=0.9)
    assert len(strict) < len(loose)
    assert all(f.score >= 0.9 for f in strict)
    # a request cannot go below the floor: min_confidence 0 does not send every anchor point through
    assert all(f.score >= yunet.params.score_floor for f in yunet.detect(image, min_confidence=0.0))


def test_a_photo_larger_than_the_cap_is_shrunk_and_mapped_back(yunet: YunetDetector) -> None:
    assert yunet.params.max_side < 2048
    big = np.asarray(np.kron(images.astronaut(), np.ones((4, 4, 1), dtype=np.uint8)))  # 2048×2048, face ×4
    faces = yunet.detect(big)
    assert len(faces) == 1
    assert iou(faces[0].box / 4, images.ASTRONAUT_FACE) > 0.5
    # exactly what the network found on the shrunk copy, scaled back up
    side = yunet.params.max_side
    on_the_copy = yunet.detect(cv2.resize(big, (side, side), interpolation=cv2.INTER_AREA))
    np.testing.assert_allclose(faces[0].box, on_the_copy[0].box * 2048 / side, rtol=1e-4)
    np.testing.assert_allclose(faces[0].landmarks, on_the_copy[0].landmarks * 2048 / side, rtol=1e-4)


def test_prepare_pads_to_multiples_of_32_bottom_right_in_bgr() -> None:
    image = np.zeros((37, 70, 3), np.uint8)
    image[..., 0], image[..., 2] = 10, 200  # R, B
    tensor = prepare(image, 1.0)
    assert tensor.shape == (1, 3, 64, 96) and tensor.dtype == np.float32
    assert (tensor[0, 0, :37, :70] == 200).all() and (tensor[0, 2, :37, :70] == 10).all()  # B first
    assert not tensor[0, :, 37:].any() and not tensor[0, :, :, 70:].any()
    assert prepare(np.zeros((3000, 1000, 3), np.uint8), 1600 / 3000).shape == (1, 3, 1600, 544)


@pytest.mark.parametrize("size", [(500, 470), (333, 511), (31, 65)])
def test_sizes_that_are_not_multiples_of_32(yunet: YunetDetector, size: tuple[int, int]) -> None:
    h, w = size
    image = images.astronaut()[:h, :w]
    faces = yunet.detect(image)
    if h >= 200 and w >= 300:  # the face is inside the crop: found where it is in the whole photo
        assert len(faces) == 1 and iou(faces[0].box, images.ASTRONAUT_FACE) > 0.5
    else:
        assert faces == []


def test_decode_geometry_on_a_known_anchor_point() -> None:
    """One point above the threshold (stride 16, row 2, column 3, offsets chosen): box, score and landmarks follow
    the README's decoding."""
    h, w = 64, 96
    outputs = {}
    for stride in STRIDES:
        n = (h // stride) * (w // stride)
        outputs |= {f"cls_{stride}": np.zeros((1, n, 1), np.float32), f"obj_{stride}": np.zeros((1, n, 1), np.float32)}
        outputs |= {
            f"bbox_{stride}": np.zeros((1, n, 4), np.float32),
            f"kps_{stride}": np.zeros((1, n, 10), np.float32),
        }
    k = 2 * (w // 16) + 3
    outputs["cls_16"][0, k], outputs["obj_16"][0, k] = 0.81, 1.0
    outputs["bbox_16"][0, k] = [0.5, 0.25, np.log(2.0), 0.0]
    outputs["kps_16"][0, k] = [0.1 * i for i in range(10)]
    boxes, scores, points = decode(outputs, 0, h, w, threshold=0.5, top_k=10, nms_iou=0.3)
    centre = np.array([(3 + 0.5) * 16, (2 + 0.25) * 16])
    np.testing.assert_allclose(boxes, [[centre[0] - 16, centre[1] - 8, centre[0] + 16, centre[1] + 8]], rtol=1e-6)
    np.testing.assert_allclose(scores, [0.9], rtol=1e-6)
    expected = (np.array([3.0, 2.0]) + np.arange(10, dtype=float).reshape(5, 2) * 0.1) * 16
    np.testing.assert_allclose(points[0], expected, rtol=1e-6)


def test_outputs_of_the_wrong_layout_are_a_detector_failure() -> None:
    outputs = {
        name: np.zeros((1, 5, 10 if "kps" in name else 4 if "bbox" in name else 1), np.float32) for name in OUTPUTS
    }
    with pytest.raises(DetectorFailure, match="cls_8"):
        decode(outputs, 0, 64, 64, 0.5, 10, 0.3)


def test_a_model_that_is_not_yunet_is_refused_at_load() -> None:
    with pytest.raises(ValueError, match="not a YuNet graph"):
        YunetDetector(load_model(REPO / "model-repo", "mtcnn"))


def test_the_torch_backend_finds_the_same_faces(yunet: YunetDetector) -> None:
    """onnx2torch converts YuNet: the GPU path runs it, and on the CPU it answers as ONNX Runtime does."""
    on_torch = create_detector(load_model(REPO / "model-repo", "yunet", BackendOptions(kind="torch", device="cpu")))
    for image in (images.astronaut(), images.group_six()):
        expected, got = yunet.detect(image), on_torch.detect(image)
        assert len(got) == len(expected)
        for a, b in zip(got, expected, strict=True):
            assert abs(a.score - b.score) < 1e-4
            assert np.abs(a.box - b.box).max() < 0.05 and np.abs(a.landmarks - b.landmarks).max() < 0.05


def test_landmark_offsets_move_points_in_the_faces_own_frame() -> None:
    """x along the eyes, y across, in eye distances: the same offsets move an upright and a rotated, twice as large
    face alike."""
    upright = np.array([[[0, 0], [10, 0], [5, 6], [1, 10], [9, 10]]], np.float64)
    turned = np.stack([upright[0][:, ::-1] * [1, -1] * 2])  # rotated by 90°, scaled ×2
    offsets = np.array([[0.1, 0.0], [0.0, 0.2], [0, 0], [0, 0], [-0.1, 0.1]])
    np.testing.assert_allclose(shift_landmarks(upright, offsets)[0, [0, 1, 4]], [[1, 0], [10, 2], [8, 11]])
    rotation = np.array([[0, -1], [1, 0]]) * 2  # what was done to `upright`, as a matrix on row vectors
    np.testing.assert_allclose(shift_landmarks(turned, offsets), shift_landmarks(upright, offsets) @ rotation)


def test_the_configured_offsets_are_read_and_small(yunet: YunetDetector) -> None:
    offsets = np.array(yunet.params.landmark_offsets)
    assert offsets.shape == (5, 2) and np.abs(offsets).max() < 0.1
    with pytest.raises(ValueError, match="five"):
        YunetParams.from_config({"landmark_offsets": [[0, 0]]})
