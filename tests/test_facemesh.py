"""model-repo/facemesh with services/facemesh/model.py: MediaPipe's 468-point mesh under ONNX Runtime on a real face
cut as the detector service cuts it, and head pose from it. The points sit on the face YuNet finds and put its eyes on
the detector's; the pose keeps its sign conventions on a synthetic face and is mirror-symmetric on the real one; the
service's crop path gives the recipe's points (model-repo/recipes/headpose_eval.py)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from recipes.headpose_eval import landmarks_468, load_facemesh
from services.detector.pipeline import Face, FacePipeline
from services.detector.servicer import DetectorSettings, build
from services.facemesh.model import FRONTAL, N_POINTS, FaceMesh, camera, crop_camera, eye_centres, pose
from services.runtime.crops import Crops
from tests import images


@pytest.fixture(scope="module")
def mesh() -> FaceMesh:
    return load_facemesh()


@pytest.fixture(scope="module")
def pipeline() -> FacePipeline:
    return build(DetectorSettings())[0].servicer.pipeline


def largest(pipeline: FacePipeline, mesh: FaceMesh, image: np.ndarray) -> Face:
    """The photo's largest face with the mesh's crop, as the detector service cuts it (from a lossless PNG)."""
    return pipeline.run(images.encode(image, "PNG"), [mesh.crop]).faces[0]


def crops_of(mesh: FaceMesh, face: Face) -> Crops:
    return Crops({mesh.crop.name: face.crops[0][None]}, {mesh.crop.name: face.to_image[0][None]})


def test_the_onnx_model_loads_with_its_tensors_and_crop(mesh: FaceMesh) -> None:
    assert mesh.net.input_names == ["input"]
    assert set(mesh.net.output_names) == {"landmarks", "face_flag"}
    assert mesh.canonical.shape == (N_POINTS, 3)
    crop = mesh.crop  # MediaPipe's crop: square, 1.5 × the box, eyes level, border replicated, 192²
    shape = {"kind": "box", "size": 192, "scale": 1.5, "square": True, "level_eyes": True, "inside": False}
    assert crop.model_dump(include=set(shape)) == shape


def test_the_mesh_lies_on_the_face_and_its_eyes_on_the_detectors(mesh: FaceMesh, pipeline: FacePipeline) -> None:
    face = largest(pipeline, mesh, images.astronaut())
    assert face.landmarks is not None
    (found,) = mesh.predict(crops_of(mesh, face))
    assert found.mesh.points.shape == (N_POINTS, 3)
    assert found.mesh.presence > 0.9
    x1, y1, x2, y2 = face.box
    margin = 0.1 * max(x2 - x1, y2 - y1)
    xy = found.mesh.points[:, :2]
    assert (xy[:, 0] > x1 - margin).all() and (xy[:, 0] < x2 + margin).all()
    assert (xy[:, 1] > y1 - margin).all() and (xy[:, 1] < y2 + margin).all()
    eye_distance = float(np.linalg.norm(face.landmarks[1] - face.landmarks[0]))
    off = np.linalg.norm(eye_centres(found.mesh.points) - face.landmarks[:2], axis=1)
    assert (off < 0.15 * eye_distance).all(), off


def test_the_service_path_gives_the_recipes_points(mesh: FaceMesh, pipeline: FacePipeline) -> None:
    """One pass on the detector's crop and its to_image is the recipe's pass cut from the image; the second pass,
    cut from the first crop, moves the points by a little only."""
    image = images.astronaut()
    face = largest(pipeline, mesh, image)
    assert face.landmarks is not None
    box = pipeline.detector.detect(image)[0].box  # as found (the answer's box is clipped to the image)
    (reference,) = landmarks_468(mesh, image, [box], [face.landmarks[:2]], passes=1)
    one, two = (mesh.params.model_copy(update={"passes": n}) for n in (1, 2))
    try:
        mesh.params = one
        (first,) = mesh.predict(crops_of(mesh, face))
    finally:
        mesh.params = two
    np.testing.assert_allclose(first.mesh.points[:, :2], reference.points[:, :2], atol=0.05)
    (second,) = mesh.predict(crops_of(mesh, face))
    eye_distance = float(np.linalg.norm(face.landmarks[1] - face.landmarks[0]))
    moved = np.linalg.norm(second.mesh.points[:, :2] - first.mesh.points[:, :2], axis=1)
    assert np.median(moved) < 0.1 * eye_distance, np.median(moved)


def test_a_mirrored_face_has_the_opposite_yaw_and_roll(mesh: FaceMesh, pipeline: FacePipeline) -> None:
    image = images.astronaut()
    plain, mirrored = (
        mesh.predict(crops_of(mesh, largest(pipeline, mesh, picture)))[0].pose
        for picture in (image, np.ascontiguousarray(image[:, ::-1]))
    )
    assert abs(plain.yaw + mirrored.yaw) < 3.5
    assert abs(plain.roll + mirrored.roll) < 3.5
    assert abs(plain.pitch - mirrored.pitch) < 3.5


def _turn(axis: int, degrees: float) -> np.ndarray:
    vector = np.zeros(3)
    vector[axis] = math.radians(degrees)
    return cv2.Rodrigues(vector)[0]


@pytest.mark.parametrize(
    ("turn", "expected"),
    [
        # about the camera's vertical axis (y down): the nose moves to the image's left -> yaw negative
        (_turn(1, 20), (-20.0, 0.0, 0.0)),
        # about its x axis: the nose moves down in the image -> pitch negative
        (_turn(0, 20), (0.0, -20.0, 0.0)),
        # about the optical axis: clockwise on screen -> roll positive
        (_turn(2, 20), (0.0, 0.0, 20.0)),
    ],
)
def test_pose_conventions_on_the_projected_canonical_face(
    mesh: FaceMesh, turn: np.ndarray, expected: tuple[float, float, float]
) -> None:
    width, height = 640, 480
    k = camera(width, height)
    camera_points = mesh.canonical @ (turn @ FRONTAL).T + [0.0, 0.0, 60.0]
    projected = camera_points @ k.T
    image_points = np.column_stack([projected[:, :2] / projected[:, 2:], np.zeros(N_POINTS)])
    got = pose(mesh.canonical, image_points, k)
    assert (got.yaw, got.pitch, got.roll) == pytest.approx(expected, abs=0.01)


def test_the_crop_camera_sits_on_the_crop_centre_at_focal_crop_sides() -> None:
    side, size = 300.0, 192
    to_image = np.array([[side / size, 0.0, 100.0], [0.0, side / size, 50.0]])
    k = crop_camera(to_image, size, 3.0)
    centre = to_image @ np.array([size / 2 - 0.5, size / 2 - 0.5, 1.0])
    np.testing.assert_allclose(k[:2, 2], centre)
    assert k[0, 0] == k[1, 1] == pytest.approx(3.0 * side)
