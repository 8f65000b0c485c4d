"""Dense landmarks (MediaPipe's 468-point face mesh, `model-repo/facemesh`) and head pose from them, and how well
that pose holds on AFLW2000 and under label-free checks (mirroring, in-plane rotation).

The first half of this file is the code a service can take as it is (numpy, OpenCV and the model folder only):
`face_crop` cuts MediaPipe's crop, `landmarks_468` runs the mesh, `pose` fits MediaPipe's canonical face to the points
with cv2.solvePnP. The second half evaluates it:

    python -m recipes.headpose_eval --data ../shared/datasets [--json model-repo/facemesh/eval.json]
    python -m recipes.headpose_eval --crops .cache/facemesh/crops.npy   # real face crops for facemesh_export's check

Pose conventions (degrees; `Pose`), all as seen in the image, whatever way the person faces:
- roll: the angle of the eye line, from the eye on the image's left to the one on its right, positive clockwise on
  screen (the right-hand eye lower). Rotating the photo clockwise by θ adds θ.
- yaw: positive when the face turns towards the image's right (the person's own left). A mirrored face negates it.
- pitch: positive when the face tilts up (chin up, the nose moves up in the image).
They are one decomposition of the head's rotation in the camera's frame (x right, y down, z forward) relative to a
face looking straight into the camera: H = Rz(roll) · Ry(−yaw) · Rx(−pitch), roll outermost so that it is exactly the
in-plane turn of the image.

AFLW2000-3D's labels (`Pose_Para[:3]`, radians) are pitch, yaw, roll of 3DDFA's rotation R = Rx(pitch) Ry(yaw)
Rz(roll), with 3DDFA's transposed elementary matrices, in its model frame (x right, y up, z towards the viewer);
`aflw_angles` converts our rotation into that decomposition exactly, and the evaluation compares in it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from pydantic.dataclasses import dataclass as params_dataclass

from services.detector.align import box_frame, crop_matrix, eye_angle, warp_crop
from services.runtime.modelrepo import PARAMS_CONFIG, LoadedModel, load_model, params_of

MODEL_REPO = Path(__file__).resolve().parents[1]
N_POINTS = 468
# Mesh indices (MediaPipe's topology): outer corners of the eye on the image's left (the person's right) and on the
# image's right, as MediaPipe's tracking ROI uses them, and the inner corners; the nose tip.
EYE_OUTER = (33, 263)
EYE_INNER = (133, 362)
# Upper and lower lids of each eye (image left, image right), for the eye centre: the mean of the corners and lids.
EYE_RINGS = ((33, 133, 159, 145), (263, 362, 386, 374))
NOSE_TIP = 1


@params_dataclass(config=PARAMS_CONFIG)
class FacemeshParams:
    """facemesh's [params] (model-repo/facemesh/config.toml): MediaPipe's crop and the network's input and outputs."""

    input_name: str = "input"
    input_size: int = 192
    layout: Literal["NCHW"] = "NCHW"
    # tensor = pixel (0..255, RGB) * scale + offset: MediaPipe's ImageToTensorCalculator range [0, 1].
    scale: float = 1.0 / 255.0
    offset: float = 0.0
    # The crop: a square centred on the face box, side crop_scale × the box's longer side, turned so that the eye
    # line is level (FaceDetectionFrontDetectionToRoi: scale 1.5, square_long, rotation from the detector's eyes).
    crop_scale: float = 1.5
    rotate_to_eyes: bool = True
    # Pixels outside the photo (MediaPipe's ImageToTensorCalculator replicates the border).
    border: Literal["replicate", "zero"] = "replicate"
    landmarks_output: str = "landmarks"
    score_output: str = "face_flag"
    # face_flag is a logit; MediaPipe takes sigmoid(face_flag) ≥ 0.5 as "a face is there".
    min_presence: float = 0.5
    # A second pass from the first pass's own points (MediaPipe's tracking ROI, FaceLandmarkLandmarksToRoi): box of
    # the 468 points, eye line 33 → 263, the same scale. 1: the detector's box only.
    passes: int = 2


@dataclass(frozen=True)
class Mesh:
    points: np.ndarray  # (468, 3) float32: x, y in image pixels; z in the same pixels, smaller towards the camera
    presence: float  # sigmoid of the network's face flag, 0..1


@dataclass(frozen=True)
class Pose:
    yaw: float
    pitch: float
    roll: float
    rotation: np.ndarray  # (3, 3): canonical face frame -> camera frame (OpenCV: x right, y down, z forward)
    translation: np.ndarray  # (3,) in the canonical face's units (cm)


class FaceMesh:
    """The facemesh model folder loaded for landmarks_468 (batch of faces, ONNX Runtime or any backend)."""

    def __init__(self, model: LoadedModel) -> None:
        self.params = params_of(model, FacemeshParams)
        self.net = model.backends["model"]
        if model.directory is None:
            raise ValueError("facemesh needs its model folder (canonical_face.npy)")
        self.canonical = np.load(model.directory / "canonical_face.npy").astype(np.float64)


def load_facemesh(model_repo: Path = MODEL_REPO, name: str = "facemesh") -> FaceMesh:
    return FaceMesh(load_model(model_repo, name))


def crop_frame(box: np.ndarray, eyes: np.ndarray | None, params: FacemeshParams) -> tuple[np.ndarray, float, float]:
    """The crop's centre (x, y), side (image pixels) and angle (radians, the eye line's, clockwise on screen): the
    detector's box crop of CropSpec BOX, square, scale crop_scale, level_eyes (services/detector/align.py)."""
    centre, (side, _) = box_frame(box, params.crop_scale, square=True)
    angle = eye_angle(eyes) if params.rotate_to_eyes and eyes is not None else 0.0
    return centre, side, angle


def face_crop(image: np.ndarray, box: np.ndarray, eyes: np.ndarray | None, params: FacemeshParams) -> np.ndarray:
    """MediaPipe's crop of one face: input_size² RGB uint8."""
    return _crop(image, *crop_frame(box, eyes, params), params)


def _crop(image: np.ndarray, centre: np.ndarray, side: float, angle: float, params: FacemeshParams) -> np.ndarray:
    size = params.input_size
    border = cv2.BORDER_REPLICATE if params.border == "replicate" else cv2.BORDER_CONSTANT
    return warp_crop(image, crop_matrix(centre, (side, side), angle, size), size, border)


def _run(mesh: FaceMesh, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = mesh.params
    x = crops.astype(np.float32) * p.scale + p.offset
    out = mesh.net.run({p.input_name: np.ascontiguousarray(x.transpose(0, 3, 1, 2))})
    points = out[p.landmarks_output].reshape(len(crops), N_POINTS, 3)
    logits = out[p.score_output].reshape(len(crops))
    return points, 1.0 / (1.0 + np.exp(-logits))


def _to_image(points: np.ndarray, centre: np.ndarray, side: float, angle: float, size: int) -> np.ndarray:
    """The network's points (x, y, z in crop pixels, (0, 0) the crop's corner) in image coordinates ((0, 0) the
    image's corner, as boxes are); z scaled as x and y (MediaPipe: z in units of the crop's width)."""
    c, s = math.cos(angle), math.sin(angle)
    k = side / size
    rot = np.array([[c, -s], [s, c]]) * k
    xy = (points[:, :2] - size / 2) @ rot.T + centre
    return np.column_stack([xy, points[:, 2] * k]).astype(np.float32)


def roi_from_points(points: np.ndarray, params: FacemeshParams) -> tuple[np.ndarray, float, float]:
    """MediaPipe's tracking ROI (FaceLandmarkLandmarksToRoi): the points' box, turned by the eye line 33 → 263."""
    lo, hi = points[:, :2].min(axis=0), points[:, :2].max(axis=0)
    (lx, ly), (rx, ry) = points[EYE_OUTER[0], :2], points[EYE_OUTER[1], :2]
    angle = math.atan2(ry - ly, rx - lx) if params.rotate_to_eyes else 0.0
    return (lo + hi) / 2, params.crop_scale * float(max(hi - lo)), angle


def landmarks_468(
    mesh: FaceMesh, image: np.ndarray, boxes: Sequence[np.ndarray], eyes: Sequence[np.ndarray | None]
) -> list[Mesh]:
    """The 468 points of each face (box x1, y1, x2, y2 and the detector's two eyes, image left first; None: no
    turn) in an RGB uint8 image, in that image's pixels: one batch per pass."""
    p = mesh.params
    frames = [
        crop_frame(np.asarray(b), None if e is None else np.asarray(e), p) for b, e in zip(boxes, eyes, strict=True)
    ]
    results: list[Mesh] = []
    for _ in range(max(1, p.passes)):
        points, presence = _run(mesh, np.stack([_crop(image, *frame, p) for frame in frames]))
        results = [
            Mesh(_to_image(pts, *frame, p.input_size), float(score))
            for pts, frame, score in zip(points, frames, presence, strict=True)
        ]
        frames = [roi_from_points(r.points, p) for r in results]
    return results


def camera(width: int, height: int) -> np.ndarray:
    """A pinhole of focal length = the image's width, principal point its centre (no calibration is known)."""
    return np.array([[width, 0.0, width / 2], [0.0, width, height / 2], [0.0, 0.0, 1.0]])


# The canonical face (x towards the person's left, y up, z out of the face) seen frontally by OpenCV's camera.
FRONTAL = np.diag([1.0, -1.0, -1.0])


def pose(mesh: FaceMesh, points: np.ndarray, width: int, height: int) -> Pose:
    """Head pose from the 468 image points: the canonical face fitted by cv2.solvePnP (all points, x and y)."""
    image_points = np.ascontiguousarray(points[:, :2], dtype=np.float64)
    k = camera(width, height)
    ok, rvec, tvec = cv2.solvePnP(mesh.canonical, image_points, k, None, flags=cv2.SOLVEPNP_SQPNP)
    if not ok:
        raise ValueError("solvePnP found no pose")
    ok, rvec, tvec = cv2.solvePnP(
        mesh.canonical, image_points, k, None, rvec, tvec, useExtrinsicGuess=True, flags=cv2.SOLVEPNP_ITERATIVE
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


def aflw_angles(rotation: np.ndarray) -> tuple[float, float, float]:
    """(pitch, yaw, roll) in degrees, as AFLW2000-3D's Pose_Para gives them (3DDFA: R = Rx(φ) Ry(γ) Rz(θ) with
    Rx = [[1,0,0],[0,c,s],[0,−s,c]], Ry = [[c,0,−s],[0,1,0],[s,0,c]], Rz = [[c,s,0],[−s,c,0],[0,0,1]], mapping the
    model frame (x right, y up, z to the viewer) to the same frame of the camera)."""
    flip = np.diag([1.0, -1.0, -1.0])  # OpenCV's camera frame -> 3DDFA's (y up, z towards the viewer)
    r = flip @ rotation  # the canonical face's frame is 3DDFA's model frame
    # R[0,2] = -sin γ; R[1,2] = sin φ cos γ; R[2,2] = cos φ cos γ; R[0,1] = cos γ sin θ; R[0,0] = cos γ cos θ.
    yaw = math.asin(max(-1.0, min(1.0, -r[0, 2])))
    pitch = math.atan2(r[1, 2], r[2, 2])
    roll = math.atan2(r[0, 1], r[0, 0])
    return math.degrees(pitch), math.degrees(yaw), math.degrees(roll)


def eye_centres(points: np.ndarray) -> np.ndarray:
    """(2, 2): the centres of the eye on the image's left and on its right (mean of corners and lids)."""
    return np.stack([points[list(ring), :2].mean(axis=0) for ring in EYE_RINGS])


# ---------------------------------------------------------------------------------------------------------------
# Evaluation


def detector():  # noqa: ANN201 (services' FaceDetector)
    from services.detector.detectors import create_detector

    return create_detector(load_model(MODEL_REPO, "yunet"))


def largest_face(found: list) -> object | None:
    return max(found, key=lambda d: d.area) if found else None


def measure(mesh: FaceMesh, faces, image: np.ndarray) -> tuple[Pose, Mesh] | None:  # noqa: ANN001
    face = largest_face(faces.detect(image))
    if face is None:
        return None
    (result,) = landmarks_468(mesh, image, [face.box], [face.landmarks[:2]])
    return pose(mesh, result.points, image.shape[1], image.shape[0]), result


def rotate(image: np.ndarray, degrees_clockwise: float) -> np.ndarray:
    h, w = image.shape[:2]
    # cv2: positive angles turn counter-clockwise on screen.
    m = cv2.getRotationMatrix2D((w / 2 - 0.5, h / 2 - 0.5), -degrees_clockwise, 1.0)
    return cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def load_aflw(folder: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, RGB image, [pitch, yaw, roll] in degrees) per AFLW2000-3D sample."""
    from PIL import Image
    from scipy.io import loadmat

    samples = []
    for mat in sorted(folder.glob("*.mat")):
        labels = loadmat(mat)
        angles_deg = np.degrees(labels["Pose_Para"][0, :3].astype(np.float64))
        image = np.asarray(Image.open(mat.with_suffix(".jpg")).convert("RGB"))
        samples.append((mat.stem, image, angles_deg))
    return samples


def evaluate(data: Path, passes: int) -> dict:
    import dataclasses

    mesh = load_facemesh()
    mesh.params = dataclasses.replace(mesh.params, passes=passes)
    faces = detector()
    rows = []
    for name, image, label in load_aflw(data / "headpose" / "aflw2000_sample"):
        got = measure(mesh, faces, image)
        if got is None:
            rows.append({"image": name, "found": False})
            continue
        est, result = got
        row: dict = {
            "image": name,
            "found": True,
            "presence": round(result.presence, 4),
            "label_pitch_yaw_roll": [round(v, 2) for v in label],
            "ours_pitch_yaw_roll_aflw": [round(v, 2) for v in aflw_angles(est.rotation)],
            "ours_yaw_pitch_roll": [round(est.yaw, 2), round(est.pitch, 2), round(est.roll, 2)],
        }
        mirrored = measure(mesh, faces, np.ascontiguousarray(image[:, ::-1]))
        if mirrored is not None:
            m = mirrored[0]
            row["mirror_yaw_pitch_roll"] = [round(m.yaw, 2), round(m.pitch, 2), round(m.roll, 2)]
        row["rotated"] = {}
        for theta in (-30, -15, 15, 30):
            turned = measure(mesh, faces, rotate(image, theta))
            if turned is not None:
                row["rotated"][str(theta)] = round(turned[0].roll - est.roll, 2)
        rows.append(row)
    return {"passes": passes, "summary": summarise(rows), "images": rows}


def summarise(rows: list[dict]) -> dict:
    found = [r for r in rows if r["found"]]
    label = np.array([r["label_pitch_yaw_roll"] for r in found])
    ours = np.array([r["ours_pitch_yaw_roll_aflw"] for r in found])
    err = np.abs(ours - label)
    mirror = [(r["ours_yaw_pitch_roll"], r["mirror_yaw_pitch_roll"]) for r in found if "mirror_yaw_pitch_roll" in r]
    a, m = np.array([x for x, _ in mirror]), np.array([y for _, y in mirror])
    rot = {t: [r["rotated"][t] - float(t) for r in found if t in r["rotated"]] for t in ("-30", "-15", "15", "30")}
    out = {
        "images": len(rows),
        "faces_found": len(found),
        "mae_deg": {"pitch": err[:, 0].mean(), "yaw": err[:, 1].mean(), "roll": err[:, 2].mean()},
        "median_abs_err_deg": {
            "pitch": np.median(err[:, 0]),
            "yaw": np.median(err[:, 1]),
            "roll": np.median(err[:, 2]),
        },
        "mirror_pairs": len(mirror),
        "mirror_mean_abs_deg": {
            "yaw_plus_yaw_mirrored": np.abs(a[:, 0] + m[:, 0]).mean(),
            "pitch_minus_pitch_mirrored": np.abs(a[:, 1] - m[:, 1]).mean(),
            "roll_plus_roll_mirrored": np.abs(a[:, 2] + m[:, 2]).mean(),
        },
        "rotation_roll_error_deg": {
            t: {
                "n": len(v),
                "mean_abs": np.abs(v).mean(),
                "median_abs": np.median(np.abs(v)),
                "max_abs": np.abs(v).max(),
            }
            for t, v in rot.items()
        },
    }
    return json.loads(json.dumps(out, default=float), parse_float=lambda s: round(float(s), 3))


def speed(repeats: int = 20) -> dict[str, float]:
    """The network alone (ONNX Runtime as the model folder loads it), ms per crop at batch 1 and 16, median."""
    mesh = load_facemesh()
    out = {}
    for batch in (1, 16):
        x = np.random.default_rng(0).random((batch, 3, 192, 192), dtype=np.float32)
        mesh.net.run({"input": x})
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            mesh.net.run({"input": x})
            times.append((time.perf_counter() - start) / batch * 1000)
        out[f"batch_{batch}"] = round(float(np.median(times)), 2)
    return out


def write_crops(data: Path, out: Path) -> None:
    """MediaPipe-style crops (YuNet's box and eyes, one pass) of the AFLW2000 sample and the BBT photos, as one
    uint8 (N, 192, 192, 3) array: facemesh_export checks TFLite against ONNX Runtime on them."""
    from PIL import Image

    faces = detector()
    params = FacemeshParams()
    paths = sorted((data / "headpose" / "aflw2000_sample").glob("*.jpg"))[:8]
    paths += sorted((data / "verification" / "faceapi_js_bbt").glob("*/*1.png"))[:8]
    crops = []
    for path in paths:
        image = np.asarray(Image.open(path).convert("RGB"))
        face = largest_face(faces.detect(image))
        if face is not None:
            crops.append(face_crop(image, face.box, face.landmarks[:2], params))
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, np.stack(crops))
    print(f"{len(crops)} crops of {len(paths)} photos -> {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--json", type=Path, help="write the figures here (model-repo/facemesh/eval.json)")
    parser.add_argument("--crops", type=Path, help="only write real face crops here (for facemesh_export)")
    args = parser.parse_args()
    if args.crops:
        write_crops(args.data, args.crops)
        return
    runs: dict = {
        "measured": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "command": "python -m recipes.headpose_eval --data ../shared/datasets",
        "note": "AFLW2000-3D sample: 16 images, a smoke test, too few to measure",
        "network_ms": speed(),
    }
    runs |= {f"passes_{n}": evaluate(args.data, n) for n in (1, 2)}
    print(f"network ms per crop: {runs['network_ms']}")
    for key in ("passes_1", "passes_2"):
        s = runs[key]["summary"]
        print(
            f"{key}: {s['faces_found']}/{s['images']} faces; MAE pitch {s['mae_deg']['pitch']:.2f}, yaw "
            f"{s['mae_deg']['yaw']:.2f}, roll {s['mae_deg']['roll']:.2f}; mirror {s['mirror_mean_abs_deg']}; "
            f"rotation {s['rotation_roll_error_deg']}"
        )
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1) + "\n")


if __name__ == "__main__":
    main()
