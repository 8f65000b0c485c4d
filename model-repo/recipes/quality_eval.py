"""Error versus discard (ISO/IEC 29794-1's EDC, as face-quality research evaluates a quality score): how the
verification error falls when the pairs of lowest quality are discarded first.

    python -m recipes.quality_eval --data ../shared/datasets    # → model-repo/QUALITY.json; then
    python -m recipes.evaluate --render                          # its table in model-repo/EVAL.md

The pairs are the developer verification lists `make eval` uses (embedder_eval.load_pairs: deepface_unit_dataset,
att_faces, faceapi_js_bbt), never trained on. Each photo goes the service path in-process: the configured detector,
the largest face, the embedder's crop (dlib_150, which the quality model declares too), and where no face is found
the whole image as the face (what `make eval` sends with skip_detection); the embedder (dlib_resnet, [refine] on)
and the quality model then see the same crop. A pair's quality is the lower of its two faces'. For each discard
fraction the lowest-quality pairs are dropped (genuine and impostor alike) and the FNMR (genuine pairs below the
service's threshold, 0.916) and FMR are measured on the rest; beside it the same with sharpness alone, and with
random discards (the mean of 200 random orders), the baseline a useful score must beat.
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path
from typing import Any

import numpy as np

from recipes.embedder_eval import Pair, load_pairs, read_rgb
from services.detector.align import align_face, resize_whole
from services.detector.detectors import configured_detector
from services.embedder.model import EmbeddingModel
from services.quality.model import QualityModel, measures, sharpness_of
from services.runtime.modelrepo import load_model

REPO = Path(__file__).resolve().parents[2]
FIGURES = REPO / "model-repo" / "QUALITY.json"
FRACTIONS = (0.0, 0.05, 0.1, 0.2, 0.3)
RANDOM_ORDERS = 200
SEED = 0


def crops_of(files: list[Path], size: int, template: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The largest face's crop of each photo (the whole image where none is found), and which were found."""
    detector = configured_detector(REPO / "model-repo")
    crops, found = [], []
    for path in files:
        image = read_rgb(path)
        faces = sorted(detector.detect(image), key=lambda d: -d.area)
        found.append(bool(faces))
        crops.append(
            align_face(image, faces[0].landmarks, size, template=template) if faces else resize_whole(image, size)
        )
    return np.stack(crops), np.array(found)


def rates_at(sims: np.ndarray, same: np.ndarray, keep: np.ndarray, threshold: float) -> dict[str, float]:
    genuine, impostor = keep & same, keep & ~same
    return {
        "pairs": int(keep.sum()),
        "false_non_matches": int((sims[genuine] < threshold).sum()),
        "fnmr": float((sims[genuine] < threshold).mean()) if genuine.any() else 0.0,
        "fmr": float((sims[impostor] >= threshold).mean()) if impostor.any() else 0.0,
    }


def discarding(order: np.ndarray, fraction: float) -> np.ndarray:
    """The pairs kept when the first `fraction` of `order` (lowest quality first) is discarded."""
    keep = np.ones(len(order), bool)
    keep[order[: round(fraction * len(order))]] = False
    return keep


def curve(sims: np.ndarray, same: np.ndarray, quality: np.ndarray, threshold: float) -> list[dict[str, float]]:
    order = np.argsort(quality, kind="stable")
    return [{"discard": f, **rates_at(sims, same, discarding(order, f), threshold)} for f in FRACTIONS]


def random_curve(sims: np.ndarray, same: np.ndarray, threshold: float) -> list[dict[str, float]]:
    rng = np.random.default_rng(SEED)
    orders = [rng.permutation(len(sims)) for _ in range(RANDOM_ORDERS)]
    out = []
    for f in FRACTIONS:
        runs = [rates_at(sims, same, discarding(order, f), threshold) for order in orders]
        mean = {k: float(np.mean([r[k] for r in runs])) for k in ("pairs", "false_non_matches", "fnmr", "fmr")}
        out.append({"discard": f, **mean})
    return out


def evaluate(data: Path, quality_model: str = "quality_faceplane") -> dict[str, Any]:
    pairs: list[Pair] = [p for lst in load_pairs(data).values() for p in lst]
    files = sorted({f for a, b, _ in pairs for f in (a, b)})
    embedder = load_model(REPO / "model-repo", "dlib_resnet")
    quality = load_model(REPO / "model-repo", quality_model)
    crop = embedder.config.crop
    assert crop is not None and quality.config.crop == crop, "the quality model must declare the embedder's crop"
    crops, found = crops_of(files, crop.size, np.array(crop.template))
    model = EmbeddingModel(embedder)
    vectors = np.concatenate([model.embed(crops[i : i + 32]) for i in range(0, len(crops), 32)])
    scorer = QualityModel(quality)
    results = scorer.predict(crops)
    score = np.array([r.score for r in results])
    sharp = sharpness_of(measures(crops, scorer.params)["log_laplacian"], scorer.params)
    at = {f: i for i, f in enumerate(files)}
    a = np.array([at[x] for x, _, _ in pairs])
    b = np.array([at[y] for _, y, _ in pairs])
    sims = np.einsum("ij,ij->i", vectors[a], vectors[b])
    same = np.array([s for _, _, s in pairs])
    threshold = model.threshold
    return {
        "date": str(datetime.date.today()),
        "data": str(data),
        "quality_model": quality.config.name,
        "quality_version": quality.config.version,
        "lists": sorted(load_pairs(data)),
        "pairs": len(pairs),
        "genuine": int(same.sum()),
        "images": len(files),
        "images_without_face": int((~found).sum()),
        "threshold": threshold,
        "random_orders": RANDOM_ORDERS,
        "quality_per_image": {"min": float(score.min()), "median": float(np.median(score)), "max": float(score.max())},
        "curves": {
            "score": curve(sims, same, np.minimum(score[a], score[b]), threshold),
            "sharpness": curve(sims, same, np.minimum(sharp[a], sharp[b]), threshold),
            "random": random_curve(sims, same, threshold),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--json", type=Path, default=FIGURES)
    parser.add_argument("--model", default="quality_faceplane", help="the quality model folder")
    args = parser.parse_args()
    figures = evaluate(args.data, args.model)
    args.json.write_text(json.dumps(figures, indent=2) + "\n")
    for name, points in figures["curves"].items():
        print(name, " ".join(f"{p['discard']:.0%}: {100 * p['fnmr']:.2f}%" for p in points))


if __name__ == "__main__":
    main()
