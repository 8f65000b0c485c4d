"""Grouping face embeddings by person: complete-linkage agglomerative clustering cut at the verification threshold.

Plain numpy and scipy, no I/O: POST /v1/cluster runs it off the event loop, and model-repo/recipes/cluster_eval.py
measures it against average and single linkage, Chinese whispers and HDBSCAN on the dev sets (docs/models.md,
"Clustering": complete linkage is the best there). Complete linkage merges two clusters only while their least
similar pair of faces is still at or above the threshold, so every two faces of a cluster would verify as the
same person; a face that joins no cluster that way is noise, never a cluster of one.

Complete linkage never merges across the connected components of the graph of pairs at or above the threshold
(any pair across two components is below it), so each component is clustered on its own: the distance matrices
stay as small as the components, however many faces the request holds.
"""

from __future__ import annotations

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial.distance import pdist

NOISE = -1
BLOCK = 512  # rows of the similarity matrix computed at once: memory stays O(BLOCK × faces + edges)
# The components are cut a hair below the threshold: a pair float32 rounding puts on the wrong side of it must not
# split a component that float64 linkage would join (a wider component changes nothing but its size).
SLACK = 1e-5


def components(vectors: np.ndarray, threshold: float) -> np.ndarray:
    """A component number per face, over the graph of pairs whose cosine similarity is ≥ threshold (the rows are
    unit vectors: a dot product is the cosine)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    rows, cols = [], []
    for start in range(0, len(vectors), BLOCK):
        linked = np.nonzero(vectors[start : start + BLOCK] @ vectors.T >= threshold - SLACK)
        rows.append(linked[0] + start)
        cols.append(linked[1])
    row, col = np.concatenate(rows), np.concatenate(cols)
    graph = coo_matrix((np.ones(len(row), dtype=np.int8), (row, col)), shape=(len(vectors), len(vectors)))
    return connected_components(graph, directed=False)[1]


def complete_linkage(vectors: np.ndarray, threshold: float) -> np.ndarray:
    """A cluster label per face (0, 1, … in order of each cluster's first face), NOISE for faces in no cluster."""
    vectors = np.asarray(vectors, dtype=np.float64)
    labels = np.full(len(vectors), NOISE, dtype=np.int64)
    if len(vectors) < 2:
        return labels
    component = components(vectors, threshold)
    order = np.argsort(component, kind="stable")
    starts = np.flatnonzero(np.diff(component[order], prepend=-1))
    next_label = 0
    for members in np.split(order, starts[1:]):
        if len(members) < 2:
            continue
        tree = linkage(pdist(vectors[members], "cosine"), method="complete")
        flat = fcluster(tree, t=1.0 - threshold, criterion="distance")  # 1, 2, …
        labels[members] = next_label + flat - 1
        next_label += int(flat.max())
    return renumber(labels)


def renumber(labels: np.ndarray) -> np.ndarray:
    """Labels 0, 1, … in order of first appearance; NOISE, and a label only one face carries, become NOISE."""
    labels = np.asarray(labels)
    out = np.full(len(labels), NOISE, dtype=np.int64)
    values, first, counts = np.unique(labels, return_index=True, return_counts=True)
    shared = (counts > 1) & (values != NOISE)
    kept = sorted(first[shared].tolist())
    for new, index in enumerate(kept):
        out[labels == labels[index]] = new
    return out


def clusters(labels: np.ndarray) -> tuple[list[list[int]], list[int]]:
    """The faces (indices) of each cluster, in label order, and the noise faces."""
    members: list[list[int]] = [[] for _ in range(int(labels.max(initial=NOISE)) + 1)]
    noise: list[int] = []
    for face, label in enumerate(labels.tolist()):
        (noise if label == NOISE else members[label]).append(face)
    return members, noise
