"""Train the face-quality model (model-repo/quality_faceplane): a logistic model over cheap measures of the aligned
crop, fitted to how well each face matches other photos of the same person through the embedder.

    python -m recipes.train_quality --data ../shared/datasets        # → model-repo/quality_faceplane/config.toml

Data: people with several photos that no developer evaluation uses (the verification pair lists and the
identification people are dev data, the held-back test split is never here): NUAA's live faces
(`antispoof/nuaa/live`, 9 people, 16 sessions) and the three YouTube Faces clips (`video/youtube_faces`, every
fourth frame). Each photo goes the service path: the configured detector, the largest face, the embedder's crop
(dlib_150, the crop the quality model declares too). Each clean crop is also degraded five times at random (Gaussian
or motion blur, lower resolution, under- or over-exposure, low contrast, sensor noise, JPEG blocks, and blur with
darkness), so that the model sees the range of photos an enrolment meets; the degraded crops get their own targets.

Target of a crop: its mean cosine similarity, through the embedder (dlib_resnet, [refine] on, as the service), to
its person's *clean* crops from other sessions (another NUAA session, or YouTube frames at least 20 apart), put on
0..1 by SIMILARITY (0 at 0.85, 1 at 0.97; the embedder's threshold 0.916 falls at 0.55). The model is fitted with
those values as soft labels (logistic regression, Newton's method, a small L2 penalty); the sharpness curve is fixed
by the 2nd and 98th percentiles of log10 Laplacian variance over the training crops. Figures (held-out people, 3
folds) go to model-repo/quality_faceplane/metrics.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from recipes.embedder_eval import read_rgb
from services.detector.align import align_face
from services.detector.detectors import configured_detector
from services.embedder.model import EmbeddingModel
from services.quality.model import MEASURES, QualityParams, measures, score_of
from services.runtime.modelrepo import load_model

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "model-repo" / "quality_faceplane"
CACHE = REPO / ".cache" / "quality"
SEED = 0
VARIANTS = 5  # degraded copies of each clean crop
FRAME_GAP = 20  # YouTube frames closer than this are near-copies of each other, not other photos
# The face interior of the dlib_150 crop: brows to chin, cheek to cheek (eyes at y 0.30, mouth at 0.68).
REGION = (0.2, 0.18, 0.8, 0.84)
DARK, BRIGHT = 16.0, 240.0
FEATURES = list(MEASURES)
L2 = 1e-2
# The target's scale: a face's mean cosine similarity to its person's other photos, 0 at the first value (where most
# genuine pairs fail: FMR 0.3 on the dev impostors), 1 at the second (FMR 1e-5); the embedder's threshold, 0.916,
# falls at 0.55.
SIMILARITY = (0.85, 0.97)


@dataclass(frozen=True)
class Photo:
    person: str
    session: str
    index: int  # the frame number within its session
    image: np.ndarray


def nuaa(data: Path) -> list[Photo]:
    """NUAA live faces: `<subject>_<subject>_<glasses>_<pose>_<session>_<n>.jpg`."""
    out = []
    for path in sorted((data / "antispoof" / "nuaa" / "live").glob("*.jpg")):
        parts = path.stem.split("_")
        out.append(Photo(f"nuaa:{parts[0]}", "_".join(parts[:5]), int(parts[5]), read_rgb(path)))
    return out


def youtube(data: Path, step: int = 4) -> list[Photo]:
    out = []
    for path in sorted((data / "video" / "youtube_faces").glob("*.avi")):
        capture = cv2.VideoCapture(str(path))
        frame = 0
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            if frame % step == 0:
                out.append(Photo(f"ytf:{path.stem}", path.stem, frame, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
            frame += 1
        capture.release()
    return out


# ---------------------------------------------------------------------------------------------------------------
# Degradations of a crop, each with a random strength from mild to severe


def _blur(c: np.ndarray, r: np.random.Generator) -> np.ndarray:
    return cv2.GaussianBlur(c, (0, 0), r.uniform(0.7, 10.0))


def _motion(c: np.ndarray, r: np.random.Generator) -> np.ndarray:
    length = int(r.integers(5, 31))
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0 / length
    rotation = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), r.uniform(0, 180), 1.0)
    kernel = cv2.warpAffine(kernel, rotation, (length, length))
    return cv2.filter2D(c, -1, kernel / max(kernel.sum(), 1e-6))


def _low_resolution(c: np.ndarray, r: np.random.Generator) -> np.ndarray:
    side = max(8, int(c.shape[0] / r.uniform(2.0, 14.0)))
    small = cv2.resize(c, (side, side), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, c.shape[:2][::-1], interpolation=cv2.INTER_LINEAR)


def _dark(c: np.ndarray, r: np.random.Generator) -> np.ndarray:
    return np.clip(255.0 * (c / 255.0) ** r.uniform(1.3, 3.0) * r.uniform(0.15, 0.6), 0, 255).astype(np.uint8)


def _overexposed(c: np.ndarray, r: np.random.Generator) -> np.ndarray:
    return np.clip(c * r.uniform(1.5, 3.2) + r.uniform(0, 60), 0, 255).astype(np.uint8)


def _low_contrast(c: np.ndarray, r: np.random.Generator) -> np.ndarray:
    mean = c.mean()
    return np.clip((c - mean) * r.uniform(0.15, 0.5) + mean, 0, 255).astype(np.uint8)


def _noise(c: np.ndarray, r: np.random.Generator) -> np.ndarray:
    return np.clip(c + r.normal(0, r.uniform(6, 30), c.shape), 0, 255).astype(np.uint8)


def _jpeg(c: np.ndarray, r: np.random.Generator) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", c, [cv2.IMWRITE_JPEG_QUALITY, int(r.integers(3, 25))])
    assert ok
    return cv2.imdecode(data, cv2.IMREAD_UNCHANGED)


def _blur_dark(c: np.ndarray, r: np.random.Generator) -> np.ndarray:
    return _dark(_blur(c, r), r)


DEGRADATIONS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "blur": _blur,
    "motion": _motion,
    "low_resolution": _low_resolution,
    "dark": _dark,
    "overexposed": _overexposed,
    "low_contrast": _low_contrast,
    "noise": _noise,
    "jpeg": _jpeg,
    "blur_dark": _blur_dark,
}


# ---------------------------------------------------------------------------------------------------------------
# Crops, embeddings, targets


def clean_crops(photos: list[Photo], size: int, template: np.ndarray) -> tuple[list[Photo], np.ndarray]:
    """The photos where the detector finds a face, and the largest face's crop of each."""
    detector = configured_detector(REPO / "model-repo")
    kept, crops = [], []
    for photo in photos:
        faces = sorted(detector.detect(photo.image), key=lambda d: -d.area)
        if faces:
            kept.append(photo)
            crops.append(align_face(photo.image, faces[0].landmarks, size, template=template))
    return kept, np.stack(crops)


def references(photos: list[Photo]) -> list[np.ndarray]:
    """Per photo, the indices of its person's other photos that count as other photos: another session, or the same
    session (a video, or a person with one session) at least FRAME_GAP frames away."""
    out = []
    for i, p in enumerate(photos):
        same = [j for j, q in enumerate(photos) if q.person == p.person and j != i]
        other = [j for j in same if photos[j].session != p.session]
        if not other:
            other = [j for j in same if abs(photos[j].index - p.index) >= FRAME_GAP]
        out.append(np.array(other, int))
    return out


def embed(model: EmbeddingModel, crops: np.ndarray, batch: int = 32) -> np.ndarray:
    return np.concatenate([model.embed(crops[i : i + batch]) for i in range(0, len(crops), batch)])


# ---------------------------------------------------------------------------------------------------------------
# The fit


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = L2, steps: int = 50) -> tuple[np.ndarray, float]:
    """Weights and bias of sigmoid(b + x·w) minimising the cross-entropy to soft labels y, plus l2·|w|² (Newton)."""
    design = np.hstack([np.ones((len(x), 1)), x])
    theta = np.zeros(design.shape[1])
    penalty = l2 * len(x) * np.eye(design.shape[1])
    penalty[0, 0] = 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(design @ theta, -50, 50)))
        gradient = design.T @ (p - y) + penalty @ theta
        hessian = design.T @ (design * (p * (1 - p))[:, None]) + penalty + 1e-9 * np.eye(len(theta))
        step = np.linalg.solve(hessian, gradient)
        theta -= step
        if np.abs(step).max() < 1e-8:
            break
    return theta[1:], float(theta[0])


def ranks(x: np.ndarray) -> np.ndarray:
    """Ranks with ties given their mean rank (many targets are exactly 1)."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return ((ends - counts + ends - 1) / 2.0)[inverse]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def discard_lowest(score: np.ndarray, target: np.ndarray, fraction: float) -> float:
    """The mean target of the crops kept when the lowest-scored `fraction` is discarded."""
    order = np.argsort(score, kind="stable")
    return float(target[order[round(fraction * len(order)) :]].mean())


def make_params(values: dict[str, np.ndarray], target: np.ndarray) -> QualityParams:
    x = np.stack([values[f] for f in FEATURES], axis=1)
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-9
    weights, bias = fit_logistic((x - mean) / scale, target)
    low, high = np.percentile(values["log_laplacian"], [2, 98])
    return QualityParams(
        region=REGION,
        sharpness_log10=(round(float(low), 4), round(float(high), 4)),
        dark=DARK,
        bright=BRIGHT,
        features=FEATURES,
        mean=[round(float(v), 6) for v in mean],
        scale=[round(float(v), 6) for v in scale],
        weights=[round(float(v), 6) for v in weights],
        bias=round(bias, 6),
    )


CONFIG = """\
# Written by `python -m recipes.train_quality` ({date}); card.md says how it was made and what it measured.
name = "quality_faceplane"
version = "{date}-logistic"

# No network: the measures and the logistic model are numpy (services/quality/model.py).
[files]

[crop]
# The embedder's crop (dlib_resnet's config.toml: dlib's get_face_chip, 150 px), so the detector cuts it once for
# both and the quality is that of the face the embedder sees.
name = "dlib_150"
size = 150
template = [[0.31764, 0.30474], [0.68421, 0.30469], [0.49811, 0.52424], [0.33559, 0.68023], [0.66639, 0.6797]]

[params]
# The face interior every measure looks at: x0, y0, x1, y1 as fractions of the crop side (brows to chin).
region = {region}
# sharpness = (log10(Laplacian variance + 1) - a) / (b - a), clipped to 0..1: a and b are the 2nd and 98th
# percentiles over the training crops (clean and degraded).
sharpness_log10 = {sharpness}
# Luma at or below `dark` is under-exposed, at or above `bright` over-exposed (the shares are measures).
dark = {dark}
bright = {bright}
# score = sigmoid(bias + sum(weights * (measure - mean) / scale)): how well the face is expected to match other photos
# of the same person, their mean cosine similarity through dlib_resnet on a scale where 0 is 0.85 and 1 is 0.97 (the
# embedder's threshold, 0.916, at 0.55); fitted on {n} training crops.
features = {features}
mean = {mean}
scale = {scale}
weights = {weights}
bias = {bias}

[batching]
max_batch_size = 64
max_delay_ms = 1
"""


def toml_list(values: list) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def write_config(params: QualityParams, n: int) -> None:
    text = CONFIG.format(
        date=datetime.date.today(),
        region=toml_list(list(params.region)),
        sharpness=toml_list(list(params.sharpness_log10)),
        dark=params.dark,
        bright=params.bright,
        features=toml_list(params.features),
        mean=toml_list(params.mean),
        scale=toml_list(params.scale),
        weights=toml_list(params.weights),
        bias=params.bias,
        n=n,
    )
    (OUT / "config.toml").write_text(text)


def training_set(data: Path) -> dict[str, np.ndarray]:
    """Crops (clean and degraded), their person, their kind and their targets; cached under .cache/quality/."""
    cache = CACHE / "training-v2.npz"
    if cache.exists():
        return dict(np.load(cache))
    embedder = load_model(REPO / "model-repo", "dlib_resnet")
    crop = embedder.config.crop
    assert crop is not None
    photos, clean = clean_crops([*nuaa(data), *youtube(data)], crop.size, np.array(crop.template))
    rng = np.random.default_rng(SEED)
    names = list(DEGRADATIONS)
    crops, source, kind = [*clean], [*range(len(clean))], ["clean"] * len(clean)
    for i, c in enumerate(clean):
        for name in rng.choice(names, VARIANTS, replace=False):
            crops.append(DEGRADATIONS[name](c, rng))
            source.append(i)
            kind.append(str(name))
    model = EmbeddingModel(embedder)
    vectors = embed(model, np.stack(crops))
    refs = references(photos)
    similarity = np.array(
        [float((vectors[refs[s]] @ vectors[k]).mean()) if len(refs[s]) else np.nan for k, s in enumerate(source)]
    )
    matched = np.array(
        [float((vectors[refs[s]] @ vectors[k] >= model.threshold).mean()) if len(refs[s]) else np.nan
         for k, s in enumerate(source)]
    )  # fmt: skip
    keep = ~np.isnan(similarity)
    out = {
        "crops": np.stack(crops)[keep],
        "person": np.array([photos[s].person for s in source])[keep],
        "kind": np.array(kind)[keep],
        "similarity": similarity[keep],
        "matched": matched[keep],
    }
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(cache, **out)
    return out


def per_kind(mask: np.ndarray, target: np.ndarray, held_out: np.ndarray) -> dict[str, float]:
    return {"crops": int(mask.sum()), "mean_target": float(target[mask].mean()),
            "mean_score_held_out": float(held_out[mask].mean())}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets"))
    args = parser.parse_args()
    data = training_set(args.data)
    # The measures need the region and the exposure limits only; the fitted fields are filled in afterwards.
    base = QualityParams(region=REGION, sharpness_log10=(0.0, 1.0), dark=DARK, bright=BRIGHT, features=[], mean=[],
                         scale=[], weights=[], bias=0.0)  # fmt: skip
    values = measures(data["crops"], base)
    target = np.clip((data["similarity"] - SIMILARITY[0]) / (SIMILARITY[1] - SIMILARITY[0]), 0.0, 1.0)
    people = sorted(set(data["person"]))
    # Held-out people: three folds, each fitted on the others' crops.
    held_out = np.zeros(len(target))
    for fold in range(3):
        test = np.isin(data["person"], people[fold::3])
        params = make_params({k: v[~test] for k, v in values.items()}, target[~test])
        held_out[test] = score_of({k: v[test] for k, v in values.items()}, params)
    params = make_params(values, target)
    final = score_of(values, params)
    kinds = sorted(set(data["kind"]))
    figures = {
        "date": str(datetime.date.today()),
        "crops": len(target),
        "people": len(people),
        "clean_crops": int((data["kind"] == "clean").sum()),
        "spearman_held_out_people": spearman(held_out, target),
        "spearman_fitted": spearman(final, target),
        "mean_abs_error_held_out": float(np.abs(held_out - target).mean()),
        # The mean target (share of matches) of what is kept after discarding the lowest-scored crops (held out).
        "kept_mean_target_held_out": {f: discard_lowest(held_out, target, f) for f in (0.0, 0.1, 0.2, 0.3)},
        "per_kind": {k: per_kind(data["kind"] == k, target, held_out) for k in kinds},
    }
    write_config(params, len(target))
    (OUT / "metrics.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
