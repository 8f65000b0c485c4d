"""gateway/clustering.py on its own: complete linkage at a threshold, clustered per connected component exactly as
over the whole matrix, clusters numbered in order of their first face, faces in no cluster in noise."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import pdist

from gateway.clustering import NOISE, clusters, complete_linkage, renumber

THRESHOLD = 0.916


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def people(rng: np.random.Generator, count: int, photos: int, spread: float) -> tuple[np.ndarray, np.ndarray]:
    """`photos` embeddings around each of `count` random directions in 128-d, shuffled, and whose they are."""
    centres = unit(rng.normal(size=(count, 128)))
    who = np.repeat(np.arange(count), photos)
    vectors = unit(centres[who] + rng.normal(scale=spread, size=(len(who), 128)))
    order = rng.permutation(len(who))
    return vectors[order], who[order]


def test_people_are_found_and_strangers_are_noise() -> None:
    rng = np.random.default_rng(0)
    vectors, who = people(rng, 5, 6, 0.02)
    strangers = unit(rng.normal(size=(4, 128)))
    labels = complete_linkage(np.vstack([vectors, strangers]), THRESHOLD)
    assert (labels[len(vectors) :] == NOISE).all()
    found = labels[: len(vectors)]
    for person in range(5):  # one cluster per person, holding exactly their photos
        assert len(set(found[who == person].tolist())) == 1
    assert len(set(found.tolist())) == 5 and NOISE not in found


def test_every_two_faces_of_a_cluster_reach_the_threshold() -> None:
    vectors, _ = people(np.random.default_rng(1), 8, 10, 0.027)  # loose: people split, some faces in noise
    labels = complete_linkage(vectors, THRESHOLD)
    assert len(set(labels.tolist())) > 8 and NOISE in labels  # not a trivial case
    for label in set(labels.tolist()) - {NOISE}:
        members = vectors[labels == label]
        assert (members @ members.T).min() >= THRESHOLD - 1e-6


def test_a_chain_is_not_one_cluster() -> None:
    """a ~ b and b ~ c but a and c are far apart: single linkage would join all three, complete linkage does not."""
    angle = np.arccos(THRESHOLD) * 0.9  # a-b and b-c just inside the threshold, a-c far outside
    a, b, c = (np.array([np.cos(t), np.sin(t)] + [0.0] * 126) for t in (0.0, angle, 2 * angle))
    labels = complete_linkage(np.stack([a, b, c]), THRESHOLD)
    assert sorted(labels.tolist()).count(NOISE) == 1 and len(set(labels.tolist()) - {NOISE}) == 1


@pytest.mark.parametrize("seed", range(4))
def test_per_component_is_the_same_as_over_the_whole_matrix(seed: int) -> None:
    vectors, _ = people(np.random.default_rng(seed), 12, 8, 0.026)  # some clusters, some noise
    whole = renumber(fcluster(linkage(pdist(vectors, "cosine"), "complete"), t=1 - THRESHOLD, criterion="distance"))
    assert len(set(whole.tolist())) > 12 and NOISE in whole
    assert (complete_linkage(vectors, THRESHOLD) == whole).all()


def test_labels_follow_the_first_face_and_singletons_are_noise() -> None:
    assert renumber(np.array([7, 3, 7, 9, 3, NOISE, NOISE])).tolist() == [0, 1, 0, NOISE, 1, NOISE, NOISE]
    members, noise = clusters(np.array([0, 1, 0, NOISE, 1]))
    assert members == [[0, 2], [1, 4]] and noise == [3]


def test_no_face_or_one_face() -> None:
    assert complete_linkage(np.zeros((0, 128)), THRESHOLD).tolist() == []
    assert complete_linkage(unit(np.ones((1, 128))), THRESHOLD).tolist() == [NOISE]
    assert clusters(np.array([], dtype=np.int64)) == ([], [])
