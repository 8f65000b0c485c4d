"""Which clustering groups our face embeddings by person best: measured on the dev verification sets.

    .venv/bin/python -m recipes.cluster_eval --data ../shared/datasets
    .venv/bin/python -m recipes.cluster_eval --data ../shared/datasets --json bench/results/clustering.json

Each set is one clustering problem of its photos (folder = person): verification/att_faces (40 people),
faceapi_js_bbt (8), face_recognition_knn/train (5; one of them has a single photo), and all of them together.
Faces go through our pipeline in-process as the services run it (the configured detector, largest face, the
embedder's crop, dlib_resnet), cached under .cache/identification. Compared, each at the embedder's verification
threshold (cosine similarity 0.916, distance 1 − 0.916):
- agglomerative clustering with complete linkage cut at that distance: gateway/clustering.py, what POST /v1/cluster
  runs (scipy's hierarchy per connected component);
- agglomerative clustering with average and single linkage, cut alike (scipy's hierarchy, which scikit-learn's
  AgglomerativeClustering with `distance_threshold` reproduces);
- Chinese whispers over the pairs at or above it (here: ~20 lines of numpy);
- HDBSCAN with min_cluster_size 2 (scikit-learn's; skipped when scikit-learn is not installed: it is not a
  dependency of the project).
A cluster of one face counts as noise for every method (HDBSCAN's own noise too). Figures: pairwise precision,
recall and F1 (noise faces are singletons), BCubed F, the number of clusters against the true identities, and the
share of faces in noise.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import pdist

from gateway.clustering import NOISE, complete_linkage, renumber
from recipes.calibrate_identification import IMAGE_SUFFIXES, MODEL_REPO
from recipes.identification_eval import cached_embed
from services.embedder.model import EmbeddingModel
from services.runtime.modelrepo import load_model

SETS = ("att_faces", "faceapi_js_bbt", "face_recognition_knn/train")
SWEEP = (0.88, 0.9, 0.916, 0.93, 0.94)
CW_ITERATIONS = 50  # it settles in well under 10 on these sets
SEED = 0

Method = Callable[[np.ndarray, float], np.ndarray]


def photos(data: Path) -> list[tuple[Path, str, str]]:
    """(photo, person, set) of every dev set, folder = person."""
    out = []
    for name in SETS:
        for person in sorted(p for p in (data / "verification" / name).iterdir() if p.is_dir()):
            files = sorted(f for f in person.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
            out += [(f, f"{name}/{person.name}", name) for f in files]
    return out


def chinese_whispers(vectors: np.ndarray, threshold: float) -> np.ndarray:
    """Chinese whispers (Biemann 2006; dlib's face-clustering example) over the pairs at or above the threshold,
    weighted by similarity: each face starts as its own label and, in random order, takes the label carrying the
    most weight among its neighbours, until no label changes."""
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, -np.inf)
    graph = [(np.nonzero(row >= threshold)[0], row) for row in similarity]
    labels = np.arange(len(vectors))
    rng = np.random.default_rng(SEED)
    linked = [i for i, (nodes, _) in enumerate(graph) if len(nodes)]
    for _ in range(CW_ITERATIONS):
        changed = False
        for node in rng.permutation(linked):
            nodes, row = graph[node]
            weight: dict[int, float] = {}
            for label, w in zip(labels[nodes].tolist(), row[nodes].tolist(), strict=True):
                weight[label] = weight.get(label, 0.0) + w
            best = max(weight, key=weight.__getitem__)
            changed |= best != labels[node]
            labels[node] = best
        if not changed:
            break
    return renumber(labels)


def agglomerative(method: str) -> Method:
    def run(vectors: np.ndarray, threshold: float) -> np.ndarray:
        if len(vectors) < 2:
            return np.full(len(vectors), NOISE)
        tree = linkage(pdist(vectors.astype(np.float64), "cosine"), method=method)
        return renumber(fcluster(tree, t=1.0 - threshold, criterion="distance"))

    return run


def hdbscan(vectors: np.ndarray, threshold: float) -> np.ndarray:
    """scikit-learn's HDBSCAN on cosine distances (it takes no threshold: the density decides)."""
    from sklearn.cluster import HDBSCAN  # optional: not a project dependency

    distance = np.clip(1.0 - vectors.astype(np.float64) @ vectors.T.astype(np.float64), 0.0, 2.0)
    np.fill_diagonal(distance, 0.0)
    labels = HDBSCAN(min_cluster_size=2, metric="precomputed", copy=True).fit_predict(distance)
    return np.where(labels < 0, NOISE, labels)


def methods() -> dict[str, Method]:
    out: dict[str, Method] = {
        "chinese_whispers": chinese_whispers,
        "agglomerative_average": agglomerative("average"),
        "agglomerative_complete": complete_linkage,  # gateway/clustering.py: what POST /v1/cluster runs
        "agglomerative_single": agglomerative("single"),
    }
    if sklearn_version():
        out["hdbscan"] = hdbscan
    else:
        print("scikit-learn is not installed: HDBSCAN is left out")
    return out


def sklearn_version() -> str | None:
    try:
        import sklearn
    except ImportError:
        return None
    return str(sklearn.__version__)


def singletons(predicted: np.ndarray) -> np.ndarray:
    """Noise faces as clusters of their own (negative labels), for the pairwise and BCubed figures."""
    out = predicted.copy()
    noise = predicted == NOISE
    out[noise] = -1 - np.arange(int(noise.sum()))
    return out


def scores(truth: list[str], predicted: np.ndarray) -> dict[str, float | int]:
    _, true = np.unique(np.array(truth), return_inverse=True)
    _, pred = np.unique(singletons(predicted), return_inverse=True)
    table = np.zeros((true.max() + 1, pred.max() + 1), dtype=np.int64)
    np.add.at(table, (true, pred), 1)

    def pairs(n: np.ndarray) -> int:
        return int((n * (n - 1) // 2).sum())

    same_both, same_true, same_pred = pairs(table), pairs(table.sum(1)), pairs(table.sum(0))
    precision = same_both / same_pred if same_pred else 1.0
    recall = same_both / same_true if same_true else 1.0
    # BCubed: per face, the share of its predicted cluster that is its person, and of its person in its cluster.
    overlap = table[true, pred]
    b_precision = float(np.mean(overlap / table.sum(0)[pred]))
    b_recall = float(np.mean(overlap / table.sum(1)[true]))
    return {
        "faces": len(truth),
        "identities": int(table.shape[0]),
        "clusters": len(set(predicted.tolist()) - {NOISE}),
        "noise": round(float(np.mean(predicted == NOISE)), 4),
        "pairwise_precision": round(precision, 4),
        "pairwise_recall": round(recall, 4),
        "pairwise_f1": round(2 * precision * recall / (precision + recall) if precision + recall else 0.0, 4),
        "bcubed_f": round(2 * b_precision * b_recall / (b_precision + b_recall), 4),
    }


def evaluate(data: Path, model: str) -> dict:
    threshold = EmbeddingModel(load_model(MODEL_REPO, model)).threshold
    found_photos = photos(data)
    vectors, found = cached_embed([path for path, _, _ in found_photos], model)
    kept = [i for i in range(len(found_photos)) if found[i]]
    problems = {name: [i for i in kept if found_photos[i][2] == name] for name in SETS} | {"all": kept}
    compared = methods()
    results: dict[str, dict] = {}
    for name, fn in compared.items():
        results[name] = {}
        for problem, index in problems.items():
            started = time.perf_counter()
            labels = fn(vectors[index], threshold)
            elapsed = time.perf_counter() - started
            truth = [found_photos[i][1] for i in index]
            results[name][problem] = {**scores(truth, labels), "ms": round(elapsed * 1000, 1)}
    sweep = {}
    for t in SWEEP:
        truth = [found_photos[i][1] for i in kept]
        sweep[str(t)] = {
            name: scores(truth, fn(vectors[kept], t)) for name, fn in compared.items() if name != "hdbscan"
        }
    return {
        "model": model,
        "threshold": threshold,
        "photos": len(found_photos),
        "photos_without_face": len(found_photos) - len(kept),
        "scikit_learn": sklearn_version(),  # HDBSCAN's, when installed
        "results": results,
        "sweep_all": sweep,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--model", default="dlib_resnet")
    parser.add_argument("--json", type=Path, help="write every figure here (bench/results/clustering.json)")
    args = parser.parse_args()
    result = {"date": str(datetime.date.today()), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "command": "python -m recipes.cluster_eval", **evaluate(args.data, args.model)}  # fmt: skip
    print(
        f"{result['photos']} photos ({result['photos_without_face']} without a face), threshold {result['threshold']}"
    )
    print("| method | set | faces | identities | clusters | noise | pairwise P | pairwise R | pairwise F1 | "
          "BCubed F | ms |\n|---|---|---|---|---|---|---|---|---|---|---|")  # fmt: skip
    for name, problems in result["results"].items():
        for problem, r in problems.items():
            print(f"| {name} | {problem} | {r['faces']} | {r['identities']} | {r['clusters']} | {r['noise']:.1%} | "
                  f"{r['pairwise_precision']:.3f} | {r['pairwise_recall']:.3f} | {r['pairwise_f1']:.3f} | "
                  f"{r['bcubed_f']:.3f} | {r['ms']} |")  # fmt: skip
    print("\nall sets together, by threshold (pairwise F1 / BCubed F / noise):")
    for t, by_method in result["sweep_all"].items():
        cells = ", ".join(
            f"{m} {r['pairwise_f1']:.3f}/{r['bcubed_f']:.3f}/{r['noise']:.1%}" for m, r in by_method.items()
        )
        print(f"  {t}: {cells}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
