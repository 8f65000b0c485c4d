"""Passive liveness (real face vs presentation attack) of MiniFASNet on NUAA, in ISO/IEC 30107-3's terms.

    python -m recipes.liveness_eval [--data ../shared/datasets] [--samples ../shared/weights/minifasnet/samples]
                                    [--model minifasnet] [--json model-repo/minifasnet/eval.json]

Each photo goes the way the service will take it: YuNet (model-repo/yunet, the detector service's own code,
in-process) finds the faces, the largest is kept, and every network of the model folder gets its own crop of it
— the box scaled about its centre by the network's factor in [params] `scales` (lowered where the scaled box would
not fit the photo, the box then shifted to lie inside it; upstream's AffineCrop), resized to 80×80 bilinearly,
aspect not kept. The liveness score is the mean over the networks of P(class `real_index`); the photo is taken
as real when the score reaches the threshold.

NUAA (`antispoof/nuaa/{live,print}`, 9 subjects here, 0001–0009) is split by subject: the threshold is chosen
on the validation subjects (--val-subjects, 0001–0003 by default) and the figures are reported on the others
(0004–0009), at that threshold, at 0.5 and at upstream's own rule (the argmax of the summed softmax). Photos
where YuNet finds no face are counted apart and left out of the rates. APCER: attacks (printed photos) accepted
as real; BPCER: real faces rejected; ACER: their mean. The sample photos of upstream's repository (F = attack,
T = real) are scored too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from services.detector.align import box_crop
from services.detector.decode import decode_image
from services.detector.detectors import FaceDetector, create_detector
from services.liveness.model import LivenessModel
from services.runtime.modelrepo import CropConfig, load_model

MODEL_REPO = Path(__file__).resolve().parents[1]
INPUT_SIZE = 80
NUAA = Path("antispoof/nuaa")
DEFAULT_VAL_SUBJECTS = ("0001", "0002", "0003")
BPCER_TARGET = 0.05
SWEEP = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)  # thresholds reported on the dev subjects besides


@dataclass(frozen=True)
class Face:
    image: np.ndarray  # RGB uint8 (H, W, 3)
    box: np.ndarray  # x1, y1, x2, y2 in its pixels


def load_rgb(path: Path) -> np.ndarray:
    """RGB uint8 in display orientation, decoded as the detector service decodes uploads (EXIF orientation
    applied: upstream's sample photos are stored on their side with orientation 6, which cv2.imread applies too)."""
    return decode_image(path.read_bytes(), max_pixels=100_000_000)


def yunet(model_repo: Path = MODEL_REPO) -> FaceDetector:
    return create_detector(load_model(model_repo, "yunet"))


def largest_face(detector: FaceDetector, image: np.ndarray) -> np.ndarray | None:
    found = detector.detect(image)
    return max(found, key=lambda d: d.area).box if found else None


# ---------------------------------------------------------------------------------------------------------------
# The crops: the detector's box crops (CropSpec BOX, `inside`), cut by the detector's own code with the service's
# specs (services/liveness/model.py `LivenessModel.specs`), whose AffineCrop bounds are services' `scaled_box`


def liveness_crops(image: np.ndarray, box: np.ndarray, scales: tuple[float, ...], size: int = INPUT_SIZE) -> np.ndarray:
    """One crop per scale, (len(scales), size, size, 3) uint8 in the image's channel order (resized bilinearly,
    cv2's default, as upstream trained with), as the detector cuts them."""
    specs = [CropConfig(name=f"box_{s}", kind="box", size=size, scale=s, inside=True) for s in scales]
    return np.stack([box_crop(image, box, None, spec)[0] for spec in specs])


def cut(liveness: LivenessModel, faces: list[Face]) -> dict[str, np.ndarray]:
    """Per network (its [files] key): the faces' crops of its spec, as the detector service cuts them."""
    empty = np.zeros((0, INPUT_SIZE, INPUT_SIZE, 3), np.uint8)
    return {
        key: np.stack([box_crop(f.image, f.box, None, spec)[0] for f in faces]) if faces else empty
        for key, spec in zip(liveness.networks, liveness.specs, strict=True)
    }


# ---------------------------------------------------------------------------------------------------------------
# ISO/IEC 30107-3 figures


def rates(scores: np.ndarray, real: np.ndarray, threshold: float) -> dict[str, float]:
    """APCER, BPCER, ACER (fractions) when a score ≥ threshold is taken as a real face."""
    accepted = scores >= threshold
    apcer = float(accepted[~real].mean()) if (~real).any() else float("nan")
    bpcer = float((~accepted[real]).mean()) if real.any() else float("nan")
    return {"threshold": float(threshold), "apcer": apcer, "bpcer": bpcer, "acer": (apcer + bpcer) / 2}


def candidate_thresholds(scores: np.ndarray) -> np.ndarray:
    """Midpoints between consecutive distinct scores, and one below and above them all."""
    s = np.unique(scores)
    return np.concatenate([[s[0] / 2], (s[:-1] + s[1:]) / 2, [(s[-1] + 1) / 2]])


def min_acer_threshold(scores: np.ndarray, real: np.ndarray) -> float:
    """The threshold of least ACER; where several tie, the middle one."""
    ts = candidate_thresholds(scores)
    acer = np.array([rates(scores, real, t)["acer"] for t in ts])
    best = np.flatnonzero(acer <= acer.min() + 1e-12)
    return float(ts[best[len(best) // 2]])


def bpcer_target_threshold(scores: np.ndarray, real: np.ndarray, target: float) -> float:
    """The highest threshold whose BPCER is at most `target` (the fewest attacks accepted at that cost)."""
    ts = candidate_thresholds(scores)
    ok = [t for t in ts if rates(scores, real, t)["bpcer"] <= target]
    return float(max(ok))


def equal_error(scores: np.ndarray, real: np.ndarray) -> dict[str, float]:
    """Where APCER and BPCER meet (the candidate with the smallest gap; their mean as the rate)."""
    ts = candidate_thresholds(scores)
    r = [rates(scores, real, t) for t in ts]
    best = min(r, key=lambda x: abs(x["apcer"] - x["bpcer"]))
    return {"threshold": best["threshold"], "eer": (best["apcer"] + best["bpcer"]) / 2}


# ---------------------------------------------------------------------------------------------------------------
# The run


@dataclass(frozen=True)
class Photo:
    path: Path
    subject: str
    real: bool


def nuaa_photos(data: Path) -> list[Photo]:
    root = data / NUAA
    photos = [
        Photo(p, p.name.split("_")[0], folder == "live")
        for folder in ("live", "print")
        for p in sorted((root / folder).glob("*.jpg"))
    ]
    if not photos:
        raise SystemExit(f"no NUAA photos under {root}")
    return photos


def score(liveness: LivenessModel, faces: list[Face]) -> dict[str, np.ndarray]:
    """Per network and fused: P(real) per face; `argmax_real`: upstream's rule (the summed softmax's argmax)."""
    probs = liveness.probabilities(cut(liveness, faces))
    out = {key: p[:, liveness.real_index] for key, p in probs.items()}
    out["mean"] = np.mean([p[:, liveness.real_index] for p in probs.values()], axis=0)
    out["argmax_real"] = np.sum(list(probs.values()), axis=0).argmax(1) == liveness.real_index
    return out


def report_part(scores: dict[str, np.ndarray], real: np.ndarray, thresholds: dict[str, float]) -> dict[str, Any]:
    fused = scores["mean"]
    out: dict[str, Any] = {
        "live": int(real.sum()),
        "attack": int((~real).sum()),
        "at": {name: rates(fused, real, t) for name, t in thresholds.items()},
        "upstream_argmax": rates(scores["argmax_real"].astype(np.float32), real, 0.5),
        "eer": equal_error(fused, real),
        "sweep": [rates(fused, real, t) for t in SWEEP],
        "live_score_quartiles": [float(q) for q in np.quantile(fused[real], [0.25, 0.5, 0.75])],
        "attack_score_max": float(fused[~real].max()),
    }
    networks = {k: v for k, v in scores.items() if k not in ("mean", "argmax_real")}
    out["per_network_at_0.5"] = {k: rates(v, real, 0.5) for k, v in networks.items()}
    out["per_network_eer"] = {k: equal_error(v, real) for k, v in networks.items()}
    return out


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def print_part(title: str, part: dict[str, Any]) -> None:
    print(f"\n{title}: {part['live']} live, {part['attack']} attack photos with a face")
    print(f"  {'operating point':<34} {'threshold':>9} {'APCER':>7} {'BPCER':>7} {'ACER':>7}")
    rows = [*part["at"].items(), ("upstream argmax of summed softmax", part["upstream_argmax"])]
    rows += [(f"{k} alone at 0.5", v) for k, v in part["per_network_at_0.5"].items()]
    for name, r in rows:
        t = "-" if name.startswith("upstream") else f"{r['threshold']:.4f}"
        print(f"  {name:<34} {t:>9} {pct(r['apcer']):>7} {pct(r['bpcer']):>7} {pct(r['acer']):>7}")
    print(
        f"  EER {pct(part['eer']['eer'])} at {part['eer']['threshold']:.4f} (threshold chosen on these photos)", end=""
    )
    print("; " + ", ".join(f"{k} alone {pct(v['eer'])}" for k, v in part["per_network_eer"].items()))
    sweep = ", ".join(f"{r['threshold']:g}: {pct(r['apcer'])} / {pct(r['bpcer'])}" for r in part["sweep"])
    print(f"  APCER / BPCER at {sweep}")
    quartiles = ", ".join(f"{q:.3f}" for q in part["live_score_quartiles"])
    print(f"  live scores' quartiles {quartiles}; the highest attack score {part['attack_score_max']:.3f}")


def faces_of(detector: FaceDetector, paths: list[Path]) -> tuple[list[Face], list[int]]:
    """The largest face of each photo that has one, and the indices of the photos that do."""
    faces, kept = [], []
    for i, path in enumerate(paths):
        image = load_rgb(path)
        box = largest_face(detector, image)
        if box is not None:
            faces.append(Face(image, box))
            kept.append(i)
    return faces, kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--samples", type=Path, default=Path("../shared/weights/minifasnet/samples"))
    parser.add_argument("--model", default="minifasnet")
    parser.add_argument("--val-subjects", nargs="+", default=list(DEFAULT_VAL_SUBJECTS))
    parser.add_argument("--json", type=Path, help="write the figures here (e.g. model-repo/minifasnet/eval.json)")
    args = parser.parse_args()

    liveness = LivenessModel(load_model(MODEL_REPO, args.model))
    detector = yunet()
    photos = nuaa_photos(args.data)
    faces, kept = faces_of(detector, [p.path for p in photos])
    scores = score(liveness, faces)
    found = [photos[i] for i in kept]
    real = np.array([p.real for p in found])
    is_val = np.array([p.subject in args.val_subjects for p in found])
    subjects = sorted({p.subject for p in photos})
    no_face = [p for i, p in enumerate(photos) if i not in set(kept)]
    print(
        f"NUAA: {len(photos)} photos of subjects {', '.join(subjects)}; YuNet finds no face in {len(no_face)} "
        f"({sum(p.real for p in no_face)} live, {sum(not p.real for p in no_face)} attack)"
    )

    val_scores = {k: v[is_val] for k, v in scores.items()}
    calibrated = min_acer_threshold(val_scores["mean"], real[is_val])
    at_target = bpcer_target_threshold(val_scores["mean"], real[is_val], BPCER_TARGET)
    thresholds = {
        "calibrated (min ACER on validation)": calibrated,
        f"BPCER <= {pct(BPCER_TARGET)} on validation": at_target,
        "0.5": 0.5,
        "config.toml threshold": liveness.threshold,
    }
    validation = report_part(val_scores, real[is_val], thresholds)
    dev = report_part({k: v[~is_val] for k, v in scores.items()}, real[~is_val], thresholds)
    print_part(f"validation subjects {', '.join(args.val_subjects)}", validation)
    dev_subjects = [s for s in subjects if s not in args.val_subjects]
    print_part(f"dev subjects {', '.join(dev_subjects)}", dev)

    per_subject = {}
    for s in dev_subjects:
        mask = np.array([p.subject == s for p in found])
        per_subject[s] = rates(scores["mean"][mask], real[mask], calibrated)
    print(
        "\ndev, per subject at the calibrated threshold: "
        + ", ".join(f"{s} APCER {pct(r['apcer'])} BPCER {pct(r['bpcer'])}" for s, r in per_subject.items())
    )

    sample_paths = sorted(args.samples.glob("*.jpg"))
    sample_faces, sample_kept = faces_of(detector, sample_paths)
    sample_scores = score(liveness, sample_faces)
    samples = {}
    for j, i in enumerate(sample_kept):
        name = sample_paths[i].stem
        expected_real = name.split("_")[-1].startswith("T")
        samples[name] = {
            "expected": "real" if expected_real else "attack",
            "score": float(sample_scores["mean"][j]),
            **{f"p_real_{k}": float(sample_scores[k][j]) for k in liveness.scales},
            "real_at_calibrated": bool(sample_scores["mean"][j] >= calibrated),
            "real_at_0.5": bool(sample_scores["mean"][j] >= 0.5),
            "real_upstream_argmax": bool(sample_scores["argmax_real"][j]),
        }
    print("\nsamples:")
    for name, s in samples.items():
        print(f"  {name} ({s['expected']}): score {s['score']:.4f}, real at calibrated {s['real_at_calibrated']}")
    print(f"\nthreshold calibrated on validation: {calibrated:.4f} (BPCER <= {pct(BPCER_TARGET)}: {at_target:.4f})")

    if args.json:
        result = {
            "date": date.today().isoformat(),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "model": args.model,
            "version": liveness.model.config.version,
            "detector": "yunet (model-repo/yunet, its defaults), largest face",
            "scales": liveness.scales,
            "score": "mean over the networks of P(real)",
            "data": str(NUAA),
            "split": {"validation_subjects": list(args.val_subjects), "dev_subjects": dev_subjects},
            "photos": len(photos),
            "no_face": {"live": sum(p.real for p in no_face), "attack": sum(not p.real for p in no_face)},
            "thresholds": {
                "calibrated_min_acer": calibrated,
                "bpcer_target": BPCER_TARGET,
                "at_bpcer_target": at_target,
            },
            "validation": validation,
            "dev": dev,
            "dev_per_subject_at_calibrated": per_subject,
            "samples": samples,
        }
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
