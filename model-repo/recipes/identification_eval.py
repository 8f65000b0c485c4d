"""Open-set (1:N) identification measured as NIST's FRVT 1:N reports do: rank-1, FNIR at a fixed FPIR, a DET curve.

    .venv/bin/python -m recipes.identification_eval --data ../shared/datasets
    .venv/bin/python -m recipes.identification_eval --data ../shared/datasets --json out.json --det d.svg

A search either returns the enrolled subject or nobody. Enrolled: one photo (the first in file order) of each dev
person of verification/att_faces, faceapi_js_bbt and face_recognition_knn/train, in two folds (alternate people):
while one fold is enrolled, the other fold's people are strangers. Beside them, distractors of unknown identity
(UTKFace and CelebA faces, one person each) fill the gallery to 1k and 10k faces.
- Mated searches: every other photo of an enrolled person. A miss (FNIR) is a search whose best face is not the
  person's, or scores below the threshold.
- Non-mated searches: every photo of the other fold's people, and UTKFace faces that are not in the gallery.
  A false positive (FPIR) is a search whose best face scores at or above the threshold.
Search is exact (numpy over the whole gallery): this measures the embedding and the decision, not the ANN index
(bench/gallery.py measures the index's recall). Faces go through our own pipeline in-process as the services run
it (configured detector, largest face, the embedder's crop). CelebA repeats identities and UTKFace holds a few
repeats, so a handful of "non-mated" searches may really have a mate among the distractors: FPIR is, if anything,
overestimated.

The default decision is identify's: the similarity where the calibrated per-comparison FMR (the model's
`fmr_table`) keeps the FPIR at the target for the gallery's size (services/embedder/openset.py).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recipes.calibrate_identification import IMAGE_SUFFIXES, MODEL_REPO, embed
from services.embedder.model import EmbeddingModel
from services.embedder.openset import OpenSetDecision
from services.runtime.modelrepo import load_model

SEED = 0
DISTRACTORS = (1_000, 10_000)
NON_MATED_UTKFACE = 2_000  # UTKFace faces searched as strangers, never enrolled
FPIR_POINTS = (0.01, 0.001)
CACHE = Path(__file__).resolve().parents[2] / ".cache" / "identification"


def dev_people(data: Path) -> dict[str, list[Path]]:
    root = data / "verification"
    folders = [*(root / "att_faces").iterdir(), *(root / "faceapi_js_bbt").iterdir()]
    folders += (root / "face_recognition_knn" / "train").iterdir()
    people = {}
    for folder in sorted(p for p in folders if p.is_dir()):
        files = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        if len(files) >= 2:
            people[f"{folder.parent.name}/{folder.name}"] = files
    return people


def distractor_pool(data: Path, count: int) -> tuple[list[Path], list[Path]]:
    """`count` gallery distractors (half UTKFace, half CelebA, nested: the first 1k are in the 10k) and the
    UTKFace faces searched as strangers, disjoint from them."""
    rng = np.random.default_rng(SEED)
    utk = sorted((data / "utkface" / "images").iterdir())
    celeba = sorted((data / "celeba" / "images").iterdir())
    utk_order = rng.permutation(len(utk))
    celeba_order = rng.permutation(len(celeba))
    half = count // 2
    gallery = [p for pair in zip(
        (utk[i] for i in utk_order[:half]), (celeba[i] for i in celeba_order[: count - half]), strict=True
    ) for p in pair]  # fmt: skip
    strangers = [utk[i] for i in utk_order[half : half + NON_MATED_UTKFACE]]
    return gallery, strangers


def cached_embed(paths: list[Path], model: str) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings, found mask) of the photos, cached under .cache/ by model config, detector config and photo list."""
    key = hashlib.sha256()
    for config in (MODEL_REPO / model / "config.toml", *sorted(MODEL_REPO.glob("*/config.toml"))):
        key.update(config.read_bytes())
    key.update("\n".join(map(str, paths)).encode())
    cache = CACHE / f"{model}-{key.hexdigest()[:16]}.npz"
    if cache.exists():
        saved = np.load(cache)
        return saved["vectors"], saved["found"]
    vectors, kept = embed(paths, model)
    found = np.zeros(len(paths), dtype=bool)
    found[kept] = True
    full = np.zeros((len(paths), vectors.shape[1]), dtype=np.float32)
    full[kept] = vectors
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(cache, vectors=full, found=found)
    return full, found


@dataclass
class Searches:
    """Per search, its best similarity and (mated only) whether the best face was the mate's."""

    mated_best: np.ndarray
    mated_right: np.ndarray
    non_mated_best: np.ndarray
    gallery_faces: int

    def fnir(self, threshold: float) -> float:
        return float(np.mean(~(self.mated_right & (self.mated_best >= threshold))))

    def fpir(self, threshold: float) -> float:
        return float(np.mean(self.non_mated_best >= threshold))

    def threshold_at_fpir(self, fpir: float) -> float:
        """The lowest threshold whose FPIR is at most `fpir`."""
        scores = np.sort(self.non_mated_best)[::-1]
        allowed = int(np.floor(fpir * len(scores)))
        return float(np.nextafter(scores[allowed], np.inf)) if allowed < len(scores) else -1.0

    def det(self, points: int = 200) -> list[tuple[float, float]]:
        """(FPIR, FNIR) over thresholds spanning the non-mated scores' upper tail."""
        thresholds = np.quantile(self.non_mated_best, np.linspace(0.0, 1.0, points))
        curve = [(self.fpir(t), self.fnir(t)) for t in np.append(thresholds, np.nextafter(thresholds[-1], np.inf))]
        return sorted(set(curve))


def searches(
    enrolled: np.ndarray, enrolled_person: np.ndarray, distractors: np.ndarray,
    mated: np.ndarray, mated_person: np.ndarray, non_mated: np.ndarray,
) -> Searches:  # fmt: skip
    gallery = np.concatenate([enrolled, distractors])
    owner = np.concatenate([enrolled_person, np.full(len(distractors), -1)])

    def best(queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        tops, where = [], []
        for start in range(0, len(queries), 512):
            sims = queries[start : start + 512] @ gallery.T
            where.append(np.argmax(sims, axis=1))
            tops.append(np.max(sims, axis=1))
        return np.concatenate(tops), np.concatenate(where)

    mated_best, mated_at = best(mated)
    non_mated_best, _ = best(non_mated)
    return Searches(mated_best, owner[mated_at] == mated_person, non_mated_best, len(gallery))


def evaluate(data: Path, model: str) -> dict:
    people = dev_people(data)
    names = sorted(people)
    distractor_paths, stranger_paths = distractor_pool(data, max(DISTRACTORS))
    person_paths = [p for name in names for p in people[name]]
    vectors, found = cached_embed(person_paths + distractor_paths + stranger_paths, model)
    n_people, n_distractors = len(person_paths), len(distractor_paths)
    person_vectors, person_found = vectors[:n_people], found[:n_people]
    distractors = vectors[n_people : n_people + n_distractors][found[n_people : n_people + n_distractors]]
    strangers = vectors[n_people + n_distractors :][found[n_people + n_distractors :]]
    person_of = np.array([i for i, name in enumerate(names) for _ in people[name]])
    first = np.zeros(n_people, dtype=bool)
    for i in range(len(names)):
        photos = np.flatnonzero((person_of == i) & person_found)
        if len(photos):
            first[photos[0]] = True
    loaded = load_model(MODEL_REPO, model)
    embedder = EmbeddingModel(loaded)

    out: dict = {
        "people": len(names), "photos": n_people, "photos_without_face": int(np.sum(~person_found)),
        "distractor_faces_found": len(distractors), "non_mated_utkface": len(strangers), "galleries": {},
    }  # fmt: skip
    for size in (0, *DISTRACTORS):
        folds = []
        for fold in (0, 1):
            in_fold = (person_of % 2 == fold) & person_found
            other = (person_of % 2 != fold) & person_found
            folds.append(searches(
                person_vectors[in_fold & first], person_of[in_fold & first], distractors[:size],
                person_vectors[in_fold & ~first], person_of[in_fold & ~first],
                np.concatenate([person_vectors[other], strangers]),
            ))  # fmt: skip
        pooled = Searches(
            np.concatenate([f.mated_best for f in folds]), np.concatenate([f.mated_right for f in folds]),
            np.concatenate([f.non_mated_best for f in folds]), max(f.gallery_faces for f in folds),
        )  # fmt: skip
        row: dict = {
            "gallery_faces": pooled.gallery_faces, "mated_searches": len(pooled.mated_best),
            "non_mated_searches": len(pooled.non_mated_best), "rank1": float(np.mean(pooled.mated_right)),
            "at_fpir": {}, "decisions": {},
        }  # fmt: skip
        for target in FPIR_POINTS:
            t = pooled.threshold_at_fpir(target)
            row["at_fpir"][str(target)] = {"threshold": round(t, 4), "fnir": pooled.fnir(t), "fpir": pooled.fpir(t)}
        decisions = {"fixed 1:1 threshold": embedder.threshold}
        for target in FPIR_POINTS:
            decision = OpenSetDecision(embedder.calibration, target, embedder.threshold)
            decisions[f"FPIR target {target:g}"] = decision.threshold(pooled.gallery_faces)
        # The strangers in each fold: first the other fold's dev people, then the UTKFace faces.
        labelled = np.concatenate([np.arange(len(f.non_mated_best)) < len(f.non_mated_best) - len(strangers)
                                   for f in folds])  # fmt: skip
        for label, t in decisions.items():
            row["decisions"][label] = {
                "threshold": round(t, 4), "fnir": pooled.fnir(t), "fpir": pooled.fpir(t),
                "fpir_dev_people": float(np.mean(pooled.non_mated_best[labelled] >= t)),
                "fpir_utkface": float(np.mean(pooled.non_mated_best[~labelled] >= t)),
            }  # fmt: skip
        row["det"] = pooled.det()
        out["galleries"][str(size)] = row
    return out


def det_svg(result: dict) -> str:
    """A DET plot (FNIR against FPIR, both on log axes) of each gallery size, as a small standalone SVG."""
    width, height, left, bottom, top, right = 560, 400, 60, 50, 20, 150
    x_lo, x_hi, y_lo, y_hi = -4.0, 0.0, -3.0, 0.0  # log10 ranges

    def xy(fpir: float, fnir: float) -> tuple[float, float]:
        fx = (np.log10(max(fpir, 10**x_lo)) - x_lo) / (x_hi - x_lo)
        fy = (np.log10(max(fnir, 10**y_lo)) - y_lo) / (y_hi - y_lo)
        return left + fx * (width - left - right), height - bottom - fy * (height - bottom - top)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
             'font-size="11"><rect width="100%" height="100%" fill="white"/>']  # fmt: skip
    for e in range(int(x_lo), int(x_hi) + 1):
        x, _ = xy(10**e, 1)
        parts.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{height - bottom}" stroke="#ddd"/>')
        parts.append(f'<text x="{x:.1f}" y="{height - bottom + 15}" text-anchor="middle">{10**e:g}</text>')
    for e in range(int(y_lo), int(y_hi) + 1):
        _, y = xy(1, 10**e)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{left - 5}" y="{y + 4:.1f}" text-anchor="end">{10**e:g}</text>')
    parts.append(f'<text x="{(left + width - right) / 2}" y="{height - 12}" text-anchor="middle">FPIR (strangers '
                 'matched)</text>')  # fmt: skip
    parts.append(f'<text transform="translate(15 {(top + height - bottom) / 2}) rotate(-90)" text-anchor="middle">'
                 'FNIR (enrolled people missed)</text>')  # fmt: skip
    colours = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")
    for k, (size, row) in enumerate(result["galleries"].items()):
        points = " ".join("{:.1f},{:.1f}".format(*xy(fpir, fnir)) for fpir, fnir in row["det"])
        colour = colours[k % len(colours)]
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>')
        label = f"{int(size):,} distractors" if int(size) else "no distractors"
        parts.append(f'<text x="{width - right + 10}" y="{top + 15 + 16 * k}" fill="{colour}">{label}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--model", default="dlib_resnet")
    parser.add_argument("--json", type=Path, help="write every figure (and the DET points) here")
    parser.add_argument("--det", type=Path, help="write the DET plot (SVG) here")
    args = parser.parse_args()
    result = {"date": str(datetime.date.today()), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              **evaluate(args.data, args.model)}  # fmt: skip
    print(f"{result['people']} people, {result['photos']} photos ({result['photos_without_face']} without a face), "
          f"{result['non_mated_utkface']} UTKFace strangers")  # fmt: skip
    print("| distractors | gallery | mated | non-mated | rank-1 | FNIR @ FPIR 1% | FNIR @ FPIR 0.1% | decision |"
          "\n|---|---|---|---|---|---|---|---|")  # fmt: skip
    for size, row in result["galleries"].items():
        fnir = [row["at_fpir"][str(t)]["fnir"] for t in FPIR_POINTS]
        decisions = "; ".join(f"{label} {d['threshold']:.3f}: FPIR {d['fpir']:.2%} (dev people "
                              f"{d['fpir_dev_people']:.2%}, UTKFace {d['fpir_utkface']:.2%}) FNIR {d['fnir']:.2%}"
                              for label, d in row["decisions"].items())  # fmt: skip
        print(f"| {size} | {row['gallery_faces']} | {row['mated_searches']} | {row['non_mated_searches']} | "
              f"{row['rank1']:.1%} | {fnir[0]:.1%} | {fnir[1]:.1%} | {decisions} |")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    if args.det:
        args.det.write_text(det_svg(result))


if __name__ == "__main__":
    main()
