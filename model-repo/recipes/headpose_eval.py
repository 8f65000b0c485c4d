"""How well the face mesh's head pose (services/facemesh: MediaPipe's 468-point mesh, `model-repo/facemesh`) holds on
AFLW2000 and under label-free checks (mirroring, in-plane rotation), the way the service computes it and the way a
caller that holds the whole image could.

    python -m recipes.headpose_eval --data ../shared/datasets [--json model-repo/facemesh/eval.json]
    python -m recipes.headpose_eval --crops .cache/facemesh/crops.npy   # real face crops for facemesh_export's check

The mesh, the pose and their conventions are services/facemesh/model.py's. Each photo is measured in several
`Variant`s: the service's own (the detector's crop, `cut` with the model's [crop]; a second pass, if any, cut from
the first crop; the camera from the crop: principal point its centre, focal length `focal` crop sides), and the
reference the card was first measured with, which needs the whole image (a second pass cut from the image; the
camera of the image: focal length its width, principal point its centre).

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

import cv2
import numpy as np

from services.detector.align import box_frame, crop_matrix, cut, eye_angle, warp_crop
from services.facemesh.model import FaceMesh, Mesh, Pose, camera, on_image, tracking_roi
from services.runtime.modelrepo import CropConfig, load_model

MODEL_REPO = Path(__file__).resolve().parents[1]


def load_facemesh(model_repo: Path = MODEL_REPO, name: str = "facemesh") -> FaceMesh:
    return FaceMesh(load_model(model_repo, name))


def face_crop(image: np.ndarray, box: np.ndarray, eyes: np.ndarray | None, crop: CropConfig) -> np.ndarray:
    """MediaPipe's crop of one face (FaceDetectionFrontDetectionToRoi: square, `crop.scale` × the box's longer side,
    the eye line level, the border replicated): size² RGB uint8, as the detector must cut it."""
    return warp_crop(image, crop_frame(box, eyes, crop), crop.size, cv2.BORDER_REPLICATE)


def crop_frame(box: np.ndarray, eyes: np.ndarray | None, crop: CropConfig) -> np.ndarray:
    """The crop's to_image (crop pixel indices → image pixel indices)."""
    centre, (side, _) = box_frame(box, crop.scale, square=True)
    angle = eye_angle(eyes) if crop.level_eyes and eyes is not None else 0.0
    return crop_matrix(centre, (side, side), angle, crop.size)


def landmarks_468(
    mesh: FaceMesh, image: np.ndarray, boxes: Sequence[np.ndarray], eyes: Sequence[np.ndarray | None], passes: int
) -> list[Mesh]:
    """The reference: the 468 points of each face in the image's pixels, the second pass (MediaPipe's tracking ROI
    of the first pass's points) cut from the image itself, as a caller holding the whole image could."""
    size = mesh.crop.size
    frames = [
        crop_frame(np.asarray(b), None if e is None else np.asarray(e), mesh.crop)
        for b, e in zip(boxes, eyes, strict=True)
    ]
    results: list[Mesh] = []
    for _ in range(passes):
        points, presence = mesh.run(np.stack([warp_crop(image, f, size, cv2.BORDER_REPLICATE) for f in frames]))
        results = [Mesh(on_image(p, f), float(s), f) for p, f, s in zip(points, frames, presence, strict=True)]
        corners = [r.points + np.array([0.5, 0.5, 0.0], np.float32) for r in results]  # indices → corner coordinates
        rois = [tracking_roi(c, mesh.crop.scale, mesh.crop.level_eyes) for c in corners]
        frames = [crop_matrix(centre, (side, side), angle, size) for centre, side, angle in rois]
    return results


def image_camera(width: int, height: int) -> np.ndarray:
    """The reference camera: focal length the image's width, principal point its centre (no calibration is known)."""
    return camera(width, height)


# ---------------------------------------------------------------------------------------------------------------
# Evaluation


def detector():  # noqa: ANN201 (services' FaceDetector)
    from services.detector.detectors import create_detector

    return create_detector(load_model(MODEL_REPO, "yunet"))


def largest_face(found: list) -> object | None:
    return max(found, key=lambda d: d.area) if found else None


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


@dataclass(frozen=True)
class Variant:
    """One way of measuring: `passes` network calls a face, the second cut from the image (`second_pass="image"`, the
    reference) or from the first crop (the service's); the camera of the image (`focal` None, the reference) or the
    crop's with focal length `focal` crop sides (the service's)."""

    name: str
    passes: int
    second_pass: str = "crop"
    focal: float | None = None


# The reference the card was first measured with (the whole image), then the service's ways: its crop path with the
# reference's camera (the crop path alone: it must match the reference), and with the crop's camera (the default
# focal 3, and others).
REFERENCE = (Variant("image_2_passes", 2, "image"), Variant("image_1_pass", 1, "image"))
SERVICE = (
    Variant("crop_1_pass_image_camera", 1),
    Variant("crop_2_passes_image_camera", 2),
    Variant("service_1_pass", 1, focal=3.0),
    Variant("service_2_passes", 2, focal=3.0),  # the service's default (config.toml)
    *(Variant(f"service_2_passes_focal_{f:g}", 2, focal=f) for f in (1.0, 2.0, 5.0, 10.0)),
)
# What each variant is compared with, face by face (the reference with the same passes, on the same faces).
COMPARED_WITH = {"image_1_pass": "image_2_passes"} | {
    v.name: "image_2_passes" if v.passes == 2 else "image_1_pass" for v in SERVICE
}


def measure(mesh: FaceMesh, faces, image: np.ndarray, variant: Variant) -> tuple[Pose, Mesh] | None:  # noqa: ANN001
    face = largest_face(faces.detect(image))
    if face is None:
        return None
    height, width = image.shape[:2]
    if variant.second_pass == "image":
        (result,) = landmarks_468(mesh, image, [face.box], [face.landmarks[:2]], variant.passes)
    else:
        pixels, to_image = cut(image, face.box, face.landmarks, mesh.crop)  # as the detector service cuts it
        mesh.params = mesh.params.model_copy(update={"passes": variant.passes})
        (result,) = mesh.meshes(pixels[None], to_image[None])
    if variant.focal is None:
        return mesh.pose(result, image_camera(width, height)), result
    mesh.params = mesh.params.model_copy(update={"focal": variant.focal})
    return mesh.pose(result), result


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


def evaluate(samples: list[tuple[str, np.ndarray, np.ndarray]], variant: Variant) -> dict:
    mesh = load_facemesh()
    faces = detector()
    rows = []
    for name, image, label in samples:
        got = measure(mesh, faces, image, variant)
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
        mirrored = measure(mesh, faces, np.ascontiguousarray(image[:, ::-1]), variant)
        if mirrored is not None:
            m = mirrored[0]
            row["mirror_yaw_pitch_roll"] = [round(m.yaw, 2), round(m.pitch, 2), round(m.roll, 2)]
        row["rotated"] = {}
        for theta in (-30, -15, 15, 30):
            turned = measure(mesh, faces, rotate(image, theta), variant)
            if turned is not None:
                row["rotated"][str(theta)] = round(turned[0].roll - est.roll, 2)
        rows.append(row)
    return {"variant": variant.__dict__, "summary": summarise(rows), "images": rows}


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
    return _rounded(out)


def difference(rows: list[dict], reference: list[dict]) -> dict:
    """|ours − the reference's| per angle (our own convention: yaw, pitch, roll), mean and max, over the faces both
    found."""
    pairs = [
        (r["ours_yaw_pitch_roll"], q["ours_yaw_pitch_roll"])
        for r, q in zip(rows, reference, strict=True)
        if r["found"] and q["found"]
    ]
    d = np.abs(np.array([a for a, _ in pairs]) - np.array([b for _, b in pairs]))
    return _rounded(
        {
            "faces": len(pairs),
            "mean_abs_deg": dict(zip(("yaw", "pitch", "roll"), d.mean(axis=0), strict=True)),
            "max_abs_deg": dict(zip(("yaw", "pitch", "roll"), d.max(axis=0), strict=True)),
        }
    )


def _rounded(out: dict) -> dict:
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
    crop = load_facemesh().crop
    paths = sorted((data / "headpose" / "aflw2000_sample").glob("*.jpg"))[:8]
    paths += sorted((data / "verification" / "faceapi_js_bbt").glob("*/*1.png"))[:8]
    crops = []
    for path in paths:
        image = np.asarray(Image.open(path).convert("RGB"))
        face = largest_face(faces.detect(image))
        if face is not None:
            crops.append(face_crop(image, face.box, face.landmarks[:2], crop))
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
    samples = load_aflw(args.data / "headpose" / "aflw2000_sample")
    runs: dict = {
        "measured": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "command": "python -m recipes.headpose_eval --data ../shared/datasets",
        "note": "AFLW2000-3D sample: 16 images, a smoke test, too few to measure",
        "network_ms": speed(),
    }
    variants = {v.name: evaluate(samples, v) for v in (*REFERENCE, *SERVICE)}
    for name, other in COMPARED_WITH.items():
        variants[name]["against_" + other] = difference(variants[name]["images"], variants[other]["images"])
    print(f"network ms per crop: {runs['network_ms']}")
    for name, run in variants.items():
        s = run["summary"]
        print(
            f"{name}: {s['faces_found']}/{s['images']} faces; MAE pitch {s['mae_deg']['pitch']:.2f}, yaw "
            f"{s['mae_deg']['yaw']:.2f}, roll {s['mae_deg']['roll']:.2f}; mirror {s['mirror_mean_abs_deg']}; "
            f"rotation {s['rotation_roll_error_deg']}"
        )
        for key in (k for k in run if k.startswith("against_")):
            print(f"    {key}: {run[key]}")
    if args.json:
        args.json.write_text(json.dumps(runs | {"variants": variants}, indent=1) + "\n")


if __name__ == "__main__":
    main()
