"""The detector's crops of both kinds on real photos, through FacePipeline as the service cuts them: box crops kept
inside the image are the liveness recipe's (MiniFASNet's AffineCrop) to the bit, eye-levelled ones the face mesh
recipe's, and every crop's to_image says where it lies in the image; over gRPC, to_image travels and a box crop
without a scale is refused."""

from __future__ import annotations

from collections.abc import AsyncIterator

import cv2
import grpc
import numpy as np
import pytest
from faceplane.v1 import common_pb2, detector_pb2, detector_pb2_grpc

from deploy.local.stack import free_port
from recipes.headpose_eval import face_crop
from recipes.liveness_eval import liveness_crops
from services.detector.align import template_points, warp_crop
from services.detector.detectors import FaceDetector
from services.detector.pipeline import Face, FacePipeline
from services.detector.servicer import DetectorSettings, build
from services.runtime.crops import to_image_of
from services.runtime.modelrepo import CropConfig
from tests import images
from tests.services.detector.test_servicer import serve

LIVENESS = [
    CropConfig(name="liveness_27", kind="box", size=80, scale=2.7, inside=True),
    CropConfig(name="liveness_40", kind="box", size=80, scale=4.0, inside=True),
]
MESH = CropConfig(name="facemesh_192", kind="box", size=192, scale=1.5, square=True, level_eyes=True)
ALIGNED = CropConfig(name="arcface_112", size=112)
PHOTOS = {"astronaut": images.astronaut, "group_six": images.group_six, "selfie": images.selfie}


@pytest.fixture(scope="module")
def pipeline() -> FacePipeline:
    return build(DetectorSettings())[0].servicer.pipeline


def detect(pipeline: FacePipeline, image: np.ndarray, specs: list[CropConfig]) -> list[Face]:
    """The faces as the service cuts them from the photo's PNG (lossless: the decoded pixels are `image`)."""
    faces = pipeline.run(images.encode(image, "PNG"), specs).faces
    assert faces
    return faces


def found(detector: FaceDetector, image: np.ndarray) -> list[np.ndarray]:
    """The detector's own boxes, as found (unclipped), in the pipeline's order (largest first)."""
    return [d.box for d in sorted(detector.detect(image), key=lambda d: d.area, reverse=True)]


def to_image_corners(to_image: np.ndarray, size: int) -> np.ndarray:
    """The crop's outer corners in image corner coordinates (pixel i spans [i, i + 1])."""
    corners = np.array([[-0.5, -0.5, 1.0], [size - 0.5, size - 0.5, 1.0]])
    return corners @ to_image.T + 0.5


def to_crop(to_image: np.ndarray, points: np.ndarray) -> np.ndarray:
    inverse = cv2.invertAffineTransform(to_image)
    return np.column_stack([points, np.ones(len(points))]) @ inverse.T


@pytest.mark.parametrize("photo", list(PHOTOS))
def test_inside_crops_are_the_liveness_recipes_and_stay_inside(pipeline: FacePipeline, photo: str) -> None:
    image = PHOTOS[photo]()
    height, width = image.shape[:2]
    faces = detect(pipeline, image, LIVENESS)
    for face, box in zip(faces, found(pipeline.detector, image), strict=True):
        expected = liveness_crops(image, box, (2.7, 4.0))
        for k, spec in enumerate(LIVENESS):
            assert np.array_equal(face.crops[k], expected[k]), (photo, spec.name)
            (x1, y1), (x2, y2) = to_image_corners(face.to_image[k], spec.size)
            assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height, (photo, spec.name)
    if photo == "selfie":  # the face fills the frame: 4× cannot fit, so the box was shrunk to the photo's height
        (_, top), (_, bottom) = to_image_corners(faces[0].to_image[1], 80)
        assert bottom - top == pytest.approx(height - 1)
    if photo == "group_six":  # faces near the edges: their 4× boxes were shifted to end on the photo's edges
        edges = [to_image_corners(f.to_image[1], 80) for f in faces]
        assert any(e[0, 0] == 0 for e in edges) and any(e[1, 0] == pytest.approx(width) for e in edges)


def test_level_eyes_crops_put_the_eyes_on_one_row_and_are_the_face_mesh_recipes(pipeline: FacePipeline) -> None:
    image = images.group_six()
    faces = detect(pipeline, image, [MESH])
    tilts = []
    for face, box in zip(faces, found(pipeline.detector, image), strict=True):
        assert face.landmarks is not None
        eyes = face.landmarks[:2]
        tilts.append(abs(float(eyes[1, 1] - eyes[0, 1])))
        (left, right) = to_crop(face.to_image[0], eyes)
        assert abs(left[1] - right[1]) < 1e-3, (left, right)
        assert left[0] < right[0]
        # Square, 1.5 × the box's longer side, centred on the box.
        sides = np.linalg.norm(face.to_image[0][:, :2], axis=0) * MESH.size
        x1, y1, x2, y2 = box
        np.testing.assert_allclose(sides, 1.5 * max(x2 - x1, y2 - y1), rtol=1e-6)
        assert np.array_equal(face.crops[0], face_crop(image, box, eyes, MESH))
    assert max(tilts) > 2  # some face of the photo was turned to level its eyes


@pytest.mark.parametrize("photo", ["astronaut", "group_six"])
def test_aligned_crops_map_the_template_onto_the_landmarks(pipeline: FacePipeline, photo: str) -> None:
    """The template's points land on the landmarks: where the face is frontal (the astronaut) each within a
    tenth of the eyes' distance; on every face on average, the least-squares fit's centroid exactly."""
    for face in detect(pipeline, PHOTOS[photo](), [ALIGNED]):
        assert face.landmarks is not None
        on_image = np.column_stack([template_points(112, 0.0), np.ones(5)]) @ face.to_image[0].T
        np.testing.assert_allclose(on_image.mean(axis=0), face.landmarks.mean(axis=0), atol=1e-3)
        if photo == "astronaut":
            eye_distance = float(np.linalg.norm(face.landmarks[1] - face.landmarks[0]))
            assert np.abs(on_image - face.landmarks).max() < 0.1 * eye_distance


@pytest.mark.parametrize("spec", [ALIGNED, *LIVENESS, MESH], ids=lambda s: s.name)
def test_to_image_points_each_crop_pixel_at_its_place_in_the_image(pipeline: FacePipeline, spec: CropConfig) -> None:
    """Sampling the image through to_image reproduces the crop (bilinear either way; a level or two of rounding)."""
    image = images.group_six()
    for face in detect(pipeline, image, [spec]):
        border = cv2.BORDER_CONSTANT if spec.kind == "aligned" else cv2.BORDER_REPLICATE
        again = warp_crop(image, face.to_image[0], spec.size, border)
        assert np.abs(again.astype(int) - face.crops[0]).max() <= 2


def test_skip_detection_takes_the_whole_image_as_the_box(pipeline: FacePipeline) -> None:
    image = images.astronaut()[:, :400]  # 512 × 400, not square
    height, width = image.shape[:2]
    whole = CropConfig(name="whole_box", kind="box", size=64)
    specs = [ALIGNED, whole, LIVENESS[0]]
    (face,) = pipeline.run(images.encode(image, "PNG"), specs, skip_detection=True).faces
    for k, spec in enumerate(specs[:2]):  # the image resized: its corners are the crop's
        np.testing.assert_allclose(to_image_corners(face.to_image[k], spec.size), [[0, 0], [width, height]], atol=1e-9)
    # Kept inside, 2.7 × the image shrinks to what fits, (W − 1) / W of it (the narrower side), as AffineCrop.
    (x1, y1), (x2, y2) = to_image_corners(face.to_image[2], 80)
    assert x2 - x1 == pytest.approx(width - 1)
    assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
    assert np.array_equal(face.crops[2], liveness_crops(image, np.array([0, 0, width, height], np.float32), (2.7,))[0])


def test_box_specs_are_checked() -> None:
    for bad in (
        {"kind": "box", "scale": 0.0},
        {"kind": "box", "scale": -1.0},
        {"kind": "box", "padding": 0.1},
        {"kind": "box", "template": [(0.3, 0.4)] * 5},
        {"kind": "box", "inside": True, "level_eyes": True},
        {"scale": 2.0},
        {"inside": True},
    ):
        with pytest.raises(ValueError):
            CropConfig(name="bad", size=80, **bad)


@pytest.fixture
async def stub() -> AsyncIterator[detector_pb2_grpc.DetectorStub]:
    async for detector in serve(DetectorSettings(port=free_port())):
        yield detector


async def test_over_grpc_every_crop_carries_its_to_image(stub: detector_pb2_grpc.DetectorStub) -> None:
    specs = [
        common_pb2.CropSpec(name="arcface_112", size=112),
        common_pb2.CropSpec(name="liveness_27", kind=common_pb2.CropSpec.BOX, size=80, scale=2.7, inside=True),
        common_pb2.CropSpec(
            name="facemesh_192", kind=common_pb2.CropSpec.BOX, size=192, scale=1.5, square=True, level_eyes=True
        ),
    ]
    data = images.encode(images.astronaut(), "PNG")
    reply = await stub.Detect(detector_pb2.DetectRequest(image=common_pb2.Image(data=data), crops=specs), timeout=30)
    (face,) = reply.faces
    assert [(c.spec, c.width) for c in face.crops] == [("arcface_112", 112), ("liveness_27", 80), ("facemesh_192", 192)]
    eyes = np.array([[face.landmarks.left_eye.x, face.landmarks.left_eye.y]])
    for crop in face.crops:
        to_image = to_image_of(crop)
        assert to_image.shape == (2, 3)
        (x, y) = to_crop(to_image, eyes)[0]  # the left eye lies in every crop
        assert 0 <= x < crop.width and 0 <= y < crop.height, crop.spec


@pytest.mark.parametrize("scale", [0.0, -2.0])
async def test_a_box_crop_without_a_positive_scale_is_refused(
    stub: detector_pb2_grpc.DetectorStub, scale: float
) -> None:
    spec = common_pb2.CropSpec(name="liveness", kind=common_pb2.CropSpec.BOX, size=80, scale=scale)
    request = detector_pb2.DetectRequest(image=common_pb2.Image(data=images.encode(images.astronaut())), crops=[spec])
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Detect(request, timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert dict(err.value.trailing_metadata() or ())["faceplane-error-code"] == "invalid_crop_spec"
