"""Calibrates the embedder's similarity to a per-comparison false-match rate (FMR), for open-set identification.

    .venv/bin/python -m recipes.calibrate_identification --data ../shared/datasets
    .venv/bin/python -m recipes.calibrate_identification --data ../shared/datasets --json out.json

Faces go through our own pipeline in-process, as the services run it: the configured detector (largest face), the
embedder model's crop, the embedding model. Impostor pairs (two different people) are:
- every cross-person pair within the labelled dev sets (verification/att_faces and faceapi_js_bbt: folder =
  person; deepface_unit_dataset: its `No` pairs of master.csv), and every pair of faces from two different sets;
- every pair involving a distractor: UTKFace and CelebA faces of unknown identity, each taken as its own person.
  Those sets hold some people more than once (CelebA's first 8,000 images repeat identities; UTKFace has a few
  repeats), so a handful of "impostor" pairs are really the same person: the tail is, if anything, overestimated,
  which errs towards a higher threshold (fewer false matches, a few more misses).
The table printed (and written into model-repo/<model>/config.toml by hand) maps a similarity to the share of
impostor pairs scoring at or above it, at FMR levels spaced a quarter decade apart, down to the smallest FMR the
number of pairs resolves (at least MIN_TAIL pairs above the point).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from services.detector.detectors import configured_detector
from services.detector.pipeline import FacePipeline
from services.embedder.model import EmbeddingModel
from services.runtime.analysis import required_crop
from services.runtime.modelrepo import load_model

MODEL_REPO = Path(__file__).resolve().parents[1]
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".pgm", ".bmp"}
SEED = 0
# The table stops where fewer impostor pairs than this score above a point: below it the FMR is noise.
MIN_TAIL = 5
MAX_PIXELS = 4096 * 4096


def labelled_faces(data: Path) -> list[tuple[Path, str]]:
    """(image, person) of the verification sets; deepface's people are unknown: each image gets its own label
    and only master.csv's `No` pairs are used among them (see impostor_mask)."""
    root = data / "verification"
    faces = []
    for name in ("att_faces", "faceapi_js_bbt"):
        for person in sorted(p for p in (root / name).iterdir() if p.is_dir()):
            files = sorted(f for f in person.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
            faces += [(f, f"{name}/{person.name}") for f in files]
    deepface = root / "deepface_unit_dataset"
    faces += [(f, f"deepface/{f.name}") for f in sorted(deepface.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
    return faces


def deepface_no_pairs(data: Path) -> set[frozenset[str]]:
    with (data / "verification" / "deepface_unit_dataset" / "master.csv").open() as f:
        rows = list(csv.DictReader(f))
    return {frozenset((f"deepface/{r['file_x']}", f"deepface/{r['file_y']}")) for r in rows if r["Decision"] == "No"}


def distractor_faces(data: Path, utkface: int, celeba: int) -> list[tuple[Path, str]]:
    rng = np.random.default_rng(SEED)
    faces = []
    for folder, count in ((data / "utkface" / "images", utkface), (data / "celeba" / "images", celeba)):
        files = sorted(folder.iterdir())
        picked = sorted(rng.choice(len(files), min(count, len(files)), replace=False))
        faces += [(files[i], f"distractor/{folder.parent.name}/{files[i].name}") for i in picked]
    return faces


def image_bytes(path: Path) -> bytes:
    """The file as a client would send it: JPEG and PNG as they are, anything else (AT&T's PGM) as PNG."""
    if path.suffix.lower() in {".jpg", ".jpeg", ".png"}:
        return path.read_bytes()
    buffer = io.BytesIO()
    Image.open(path).convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def embed(paths: list[Path], model_name: str) -> tuple[np.ndarray, list[int]]:
    """The embedding of the largest face of each photo, and the indices of the photos where a face was found."""
    loaded = load_model(MODEL_REPO, model_name)
    model = EmbeddingModel(loaded)
    crop = required_crop(loaded)
    pipeline = FacePipeline(configured_detector(MODEL_REPO), MAX_PIXELS, max_faces=1)
    crops, kept = [], []
    for i, path in enumerate(paths):
        found = pipeline.run(image_bytes(path), [crop], max_faces=1).faces
        if found:
            crops.append(found[0].crops[0])
            kept.append(i)
    vectors = np.concatenate([model.embed(np.stack(crops[i : i + 32])) for i in range(0, len(crops), 32)])
    return vectors, kept


def impostor_similarities(vectors: np.ndarray, labels: list[str], deepface_no: set[frozenset[str]]) -> np.ndarray:
    """The cosine similarity of every impostor pair (i < j), as defined in the module docstring."""
    similarity = np.clip(vectors @ vectors.T, -1.0, 1.0)
    label = np.array(labels)
    group = np.array([lab.split("/", 1)[0] for lab in labels])  # the data set
    distractor = group == "distractor"
    different_person = label[:, None] != label[None, :]
    deepface = group == "deepface"
    known = np.ones_like(different_person)
    both_deepface = deepface[:, None] & deepface[None, :]
    for i, j in zip(*np.nonzero(np.triu(both_deepface, 1)), strict=True):
        known[i, j] = known[j, i] = frozenset((labels[i], labels[j])) in deepface_no
    mask = different_person & known
    mask |= distractor[:, None] | distractor[None, :]
    mask &= ~np.eye(len(labels), dtype=bool)
    return similarity[np.triu(mask, 1)]


def fmr_table(impostors: np.ndarray, quarter_decades: int = 40) -> list[tuple[float, float]]:
    """(similarity, FMR) at FMR = 10^(-k/4), k = 0 … as far as MIN_TAIL pairs allow; similarity rising, FMR falling."""
    scores = np.sort(impostors)[::-1]  # best first: scores[n - 1] is the n-th highest
    table = []
    for k in range(quarter_decades + 1):
        n = round(len(scores) * 10 ** (-k / 4))
        if n < MIN_TAIL:
            break
        threshold = float(scores[n - 1])
        fmr = float(np.mean(impostors >= threshold))
        if not table or (threshold > table[-1][0] and fmr < table[-1][1]):
            table.append((round(threshold, 4), float(f"{fmr:.3g}")))
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--model", default="dlib_resnet")
    parser.add_argument("--utkface", type=int, default=1500, help="UTKFace distractors")
    parser.add_argument("--celeba", type=int, default=1500, help="CelebA distractors")
    parser.add_argument("--json", type=Path, help="also write the table and the counts here")
    args = parser.parse_args()

    faces = labelled_faces(args.data) + distractor_faces(args.data, args.utkface, args.celeba)
    vectors, kept = embed([path for path, _ in faces], args.model)
    labels, missed = [faces[i][1] for i in kept], len(faces) - len(kept)
    impostors = impostor_similarities(vectors, labels, deepface_no_pairs(args.data))
    table = fmr_table(impostors)
    distractors = sum(lab.startswith("distractor/") for lab in labels)
    print(f"faces: {len(faces)} ({missed} without a face), {distractors} distractors")
    print(f"impostor pairs: {len(impostors):,}")
    print("| similarity ≥ | FMR | pairs |\n|---|---|---|")
    for threshold, fmr in table:
        print(f"| {threshold:.4f} | {fmr:.3g} | {int(np.sum(impostors >= threshold)):,} |")
    for threshold in (0.85, 0.88, 0.9, 0.916, 0.93, 0.94, 0.95):
        above = int(np.sum(impostors >= threshold))
        print(f"FMR at {threshold}: {above / len(impostors):.3g} ({above:,} pairs)")
    print("fmr_table = [" + ", ".join(f"[{t}, {f}]" for t, f in table) + "]")
    if args.json:
        summary = {"faces": len(labels), "missed": missed, "distractors": distractors, "impostor_pairs": len(impostors),
                   "fmr_table": table}  # fmt: skip
        args.json.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
