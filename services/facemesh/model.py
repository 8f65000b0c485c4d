"""MediaPipe's 468-point face mesh on one box crop per face, and head pose from it; knows nothing of gRPC.

The detector cuts MediaPipe's crop (the model's [crop]: square, 1.5 × the box, eye line level, border replicated)
and says where it lies (`to_image`); the network answers 468 points in crop pixels, which to_image puts on the
image. Pose fits MediaPipe's canonical face to those points with cv2.solvePnP.

Pose conventions (degrees; `Pose`), all as seen in the image, whatever way the person faces:
- roll: the angle of the eye line, from the eye on the image's left to the one on its right, positive clockwise on
  screen (the right-hand eye lower). Rotating the photo clockwise by θ adds θ.
- yaw: positive when the face turns towards the image's right (the person's own left). A mirrored face negates it.
- pitch: positive when the face tilts up (chin up, the nose moves up in the image).
They are one decomposition of the head's rotation in the camera's frame (x right, y down, z forward) relative to a
face looking straight into the camera: H = Rz(roll) · Ry(−yaw) · Rx(−pitch), roll outermost so that it is exactly the
in-plane turn of the image.

The camera: the service sees the crop, not the image, so it cannot place the image's centre. `crop_camera` puts the
principal point on the crop's centre and the focal length at `focal` crop sides: yaw and pitch are then relative to
the line from the camera to the face (a face that looks at the camera is 0, 0 wherever it is in the frame), not to
the camera's axis. model-repo/facemesh/card.md has what that changes against a camera of the image's size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
from pydantic import Field

from services.detector.align import crop_matrix, warp_crop
from services.runtime.crops import Crops
from services.runtime.modelrepo import CropConfig, LoadedModel, ModelParams, params_of

N_POINTS = 468
# Mesh indices (MediaPipe's topology): outer corners of the eye on the image's left (the person's right) and on the
# image's right, as MediaPipe's tracking ROI uses them.
EYE_OUTER = (33, 263)
# Corners and lids of each eye (image left, image right), for the eye centre: their mean.
EYE_RINGS = ((33, 133, 159, 145), (263, 362, 386, 374))
# The canonical face (x towards the person's left, y up, z out of the face) seen frontally by OpenCV's camera.
FRONTAL = np.diag([1.0, -1.0, -1.0])


class FacemeshParams(ModelParams):
    """facemesh's [params] (model-repo/facemesh/config.toml): the network's input and outputs, the passes, the
    camera. The crop itself is the model's [crop]."""

    input_name: str = "input"
    layout: Literal["NCHW"] = "NCHW"
    # tensor = pixel (0..255, RGB) * scale + offset: MediaPipe's ImageToTensorCalculator range [0, 1].
    scale: float = 1.0 / 255.0
    offset: float = 0.0
    landmarks_output: str = "landmarks"
    score_output: str = "face_flag"
    # 2: a second pass on MediaPipe's tracking ROI of the first pass's points (their box, eye line 33 → 263, the
    # crop's scale), cut from the first crop: the service has no other pixels.
    passes: int = Field(2, ge=1, le=2)
    # The pose camera's focal length in crop sides (the crop's centre is its principal point).
    focal: float = Field(3.0, gt=0.0)


@dataclass(frozen=True)
class Mesh:
    points: np.ndarray  # (468, 3) float32: x, y in image pixels (pixel indices); z in the same pixels, nearer < 0
    presence: float  # sigmoid of the network's face flag, 0..1: the mesh's own "a face is there"
    to_image: np.ndarray  # (2, 3): the crop the points were found in → the image


@dataclass(frozen=True)
class Pose:
    yaw: float
    pitch: float
    roll: float
    rotation: np.ndarray  # (3, 3): canonical face frame -> camera frame (OpenCV: x right, y down, z forward)
    translation: np.ndarray  # (3,) in the canonical face's units (cm)


@dataclass(frozen=True)
class FacemeshResult:
    mesh: Mesh
    pose: Pose


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The 2×3 affine `outer` ∘ `inner`."""
    return np.hstack([outer[:, :2] @ inner[:, :2], (outer[:, :2] @ inner[:, 2] + outer[:, 2])[:, None]])


def on_image(points: np.ndarray, to_image: np.ndarray) -> np.ndarray:
    """The network's points (x, y, z in crop pixels, corner coordinates: (0, 0) the crop's corner) in image pixel
    indices, as to_image maps crop pixel indices; z scaled as x and y (MediaPipe: z in units of the crop's width)."""
    xy = (points[:, :2] - 0.5) @ to_image[:, :2].T + to_image[:, 2]
    scale = math.sqrt(abs(float(np.linalg.det(to_image[:, :2]))))
    return np.column_stack([xy, points[:, 2] * scale]).astype(np.float32)


def tracking_roi(points: np.ndarray, scale: float, level_eyes: bool) -> tuple[np.ndarray, float, float]:
    """MediaPipe's tracking ROI (FaceLandmarkLandmarksToRoi) of points in some frame (corner coordinates): the centre
    of their box, its longer side × scale, and the eye line's angle 33 → 263 (radians, clockwise on screen)."""
    lo, hi = points[:, :2].min(axis=0), points[:, :2].max(axis=0)
    (lx, ly), (rx, ry) = points[EYE_OUTER[0], :2], points[EYE_OUTER[1], :2]
    angle = math.atan2(ry - ly, rx - lx) if level_eyes else 0.0
    return (lo + hi) / 2, scale * float(max(hi - lo)), angle


def camera(width: float, height: float, focal: float | None = None) -> np.ndarray:
    """A pinhole of focal length `focal` (default: the width), principal point the centre of a width × height frame,
    in pixel indices (as the points)."""
    f = width if focal is None else focal
    return np.array([[f, 0.0, (width - 1) / 2], [0.0, f, (height - 1) / 2], [0.0, 0.0, 1.0]])


def crop_camera(to_image: np.ndarray, size: int, focal: float) -> np.ndarray:
    """The camera the crop allows, in image pixel indices: principal point the crop's centre, focal length `focal`
    × the crop's side in image pixels."""
    cx, cy = to_image @ np.array([size / 2 - 0.5, size / 2 - 0.5, 1.0])
    side = math.sqrt(abs(float(np.linalg.det(to_image[:, :2])))) * size
    return np.array([[focal * side, 0.0, cx], [0.0, focal * side, cy], [0.0, 0.0, 1.0]])


def pose(canonical: np.ndarray, points: np.ndarray, k: np.ndarray) -> Pose:
    """Head pose from the 468 image points: the canonical face fitted by cv2.solvePnP (all points, x and y) through
    the camera `k`."""
    image_points = np.ascontiguousarray(points[:, :2], dtype=np.float64)
    ok, rvec, tvec = cv2.solvePnP(canonical, image_points, k, None, flags=cv2.SOLVEPNP_SQPNP)
    if not ok:
        raise ValueError("solvePnP found no pose")
    ok, rvec, tvec = cv2.solvePnP(
        canonical, image_points, k, None, rvec, tvec, useExtrinsicGuess=True, flags=cv2.SOLVEPNP_ITERATIVE
    )
    rotation, _ = cv2.Rodrigues(rvec)
    yaw, pitch, roll = angles(rotation)
    return Pose(yaw, pitch, roll, rotation, tvec.reshape(3))


def angles(rotation: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees of a canonical-face → camera rotation (the module's conventions)."""
    h = rotation @ FRONTAL.T  # the head's turn away from looking straight into the camera
    # h = Rz(c) · Ry(b) · Rx(a): h[2,0] = -sin b, h[2,1] = cos b sin a, h[2,2] = cos b cos a, h[1,0] = sin c cos b,
    # h[0,0] = cos c cos b.
    b = math.asin(max(-1.0, min(1.0, -h[2, 0])))
    a = math.atan2(h[2, 1], h[2, 2])
    c = math.atan2(h[1, 0], h[0, 0])
    return -math.degrees(b), -math.degrees(a), math.degrees(c)


def eye_centres(points: np.ndarray) -> np.ndarray:
    """(2, 2): the centres of the eye on the image's left and on its right (mean of corners and lids)."""
    return np.stack([points[list(ring), :2].mean(axis=0) for ring in EYE_RINGS])


class FaceMesh:
    """The facemesh model folder: the mesh of each face's crop, and its pose."""

    def __init__(self, model: LoadedModel) -> None:
        self.params = params_of(model, FacemeshParams)
        if model.config.crop is None or model.config.crop.kind != "box":
            raise ValueError(f'{model.config.name}: the face mesh takes a box crop ([crop] kind = "box")')
        self.crop: CropConfig = model.config.crop
        self.net = model.backends["model"]
        if model.directory is None:
            raise ValueError(f"{model.config.name} needs its model folder (canonical_face.npy)")
        self.canonical = np.load(model.directory / "canonical_face.npy").astype(np.float64)
        if self.canonical.shape != (N_POINTS, 3):
            raise ValueError(f"{model.directory / 'canonical_face.npy'} is {self.canonical.shape}, not ({N_POINTS}, 3)")

    def run(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The network on (N, size, size, 3) RGB uint8 crops: (N, 468, 3) points in crop pixels, (N,) presence."""
        p = self.params
        x = crops.astype(np.float32) * p.scale + p.offset
        out = self.net.run({p.input_name: np.ascontiguousarray(x.transpose(0, 3, 1, 2))})
        points = out[p.landmarks_output].reshape(len(crops), N_POINTS, 3)
        logits = out[p.score_output].reshape(len(crops)).astype(np.float64)
        return points, 1.0 / (1.0 + np.exp(-logits))

    def meshes(self, crops: np.ndarray, to_image: np.ndarray) -> list[Mesh]:
        """Each face's 468 points in image pixels, from its crop and the crop's to_image (N, 2, 3); one batch per
        pass, a second pass cut from the first crop."""
        size = self.crop.size
        points, presence = self.run(crops)
        frames = list(to_image)
        if self.params.passes == 2:
            again = []
            for k, (crop, pts) in enumerate(zip(crops, points, strict=True)):
                centre, side, angle = tracking_roi(pts, self.crop.scale, self.crop.level_eyes)
                inner = crop_matrix(centre, (side, side), angle, size)  # second crop → first crop
                again.append(warp_crop(crop, inner, size, cv2.BORDER_REPLICATE))
                frames[k] = compose(frames[k], inner)
            points, presence = self.run(np.stack(again))
        return [
            Mesh(on_image(pts, frame), float(score), frame)
            for pts, frame, score in zip(points, frames, presence, strict=True)
        ]

    def pose(self, mesh: Mesh, k: np.ndarray | None = None) -> Pose:
        """The mesh's pose through `k`, or the camera its crop allows."""
        if k is None:
            k = crop_camera(mesh.to_image, self.crop.size, self.params.focal)
        return pose(self.canonical, mesh.points, k)

    def predict(self, crops: Crops) -> list[FacemeshResult]:
        """The service's model call: per face, its mesh on the image and its pose."""
        meshes = self.meshes(crops.batches[self.crop.name], crops.to_image[self.crop.name])
        return [FacemeshResult(m, self.pose(m)) for m in meshes]
