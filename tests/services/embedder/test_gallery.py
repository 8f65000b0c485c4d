"""The gallery against a real Redis 8 with RediSearch (the one `make run` starts), one server per module.

Every test works in its own collection, which doubles as a check that collections do not see each other.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import redis

from deploy.local.stack import free_port, redis_command, spawn, stop, wait_tcp
from services.embedder.gallery import (
    AlreadyExists,
    Gallery,
    InvalidArgument,
    InvalidId,
    Keys,
    ModelMismatch,
    NotFound,
)

DIM = 128
MODEL, VERSION = "dlib_resnet", "dlib-face-recognition-resnet-v1"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[redis.Redis]:
    data: Path = tmp_path_factory.mktemp("gallery-redis")
    port = free_port()
    proc = spawn(redis_command(port, data), {}, data / "redis.log")
    try:
        wait_tcp(port)
        with redis.Redis(port=port, protocol=2) as connection:
            yield connection
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def gallery(client: redis.Redis) -> Gallery:
    return Gallery(client, MODEL, VERSION, DIM)


@pytest.fixture
def collection() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


def unit(n: int, rng: np.random.Generator) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def noisy(v: np.ndarray, rng: np.random.Generator, scale: float = 0.04) -> np.ndarray:
    """Copies of v at cosine ≈ 0.9 to the originals: the same face, photographed again."""
    return _normalise(v + scale * rng.standard_normal(v.shape).astype(np.float32))


def _normalise(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def indexed(client: redis.Redis, collection: str, query: str = "*") -> int:
    return int(client.execute_command("FT.SEARCH", Keys(collection).index, query, "LIMIT", "0", "0")[0])


def test_create_then_duplicate_is_already_exists(gallery: Gallery, collection: str) -> None:
    subject = gallery.create_subject(collection, "alice", "Alice Liddell")
    assert (subject.subject_id, subject.name, subject.face_ids) == ("alice", "Alice Liddell", [])
    with pytest.raises(AlreadyExists):
        gallery.create_subject(collection, "alice", "Someone else")
    assert gallery.get_subject(collection, "alice").name == "Alice Liddell"


def test_get_returns_face_ids_and_unknowns_are_not_found(gallery: Gallery, collection: str) -> None:
    rng = np.random.default_rng(1)
    gallery.create_subject(collection, "bob", "Bob")
    face_ids = gallery.add_faces(collection, "bob", unit(3, rng))
    assert sorted(gallery.get_subject(collection, "bob").face_ids) == sorted(face_ids)
    with pytest.raises(NotFound):
        gallery.get_subject(collection, "nobody")
    with pytest.raises(NotFound):
        gallery.get_subject("never-created", "bob")
    with pytest.raises(NotFound):
        gallery.add_faces(collection, "nobody", unit(1, rng))
    with pytest.raises(NotFound):
        gallery.identify("never-created", unit(1, rng))


def test_list_paginates_in_stable_order(gallery: Gallery, collection: str) -> None:
    ids = [f"s{i:02d}" for i in range(7)]
    for subject_id in reversed(ids):
        gallery.create_subject(collection, subject_id, subject_id.upper())
    pages, token = [], ""
    while True:
        page, token = gallery.list_subjects(collection, page_size=3, page_token=token)
        pages.append([s.subject_id for s in page])
        if not token:
            break
    assert pages == [ids[0:3], ids[3:6], ids[6:7]]
    # A token names the last subject seen: a deletion before it does not shift the next page.
    _, token = gallery.list_subjects(collection, page_size=3)
    gallery.delete_subject(collection, "s00")
    second, _ = gallery.list_subjects(collection, page_size=3, page_token=token)
    assert [s.subject_id for s in second] == ids[3:6]
    with pytest.raises(InvalidArgument):
        gallery.list_subjects(collection, page_size=3, page_token="!!not-a-token")
    with pytest.raises(InvalidArgument):
        gallery.list_subjects(collection, page_size=5000)


def test_delete_subject_removes_its_vectors(gallery: Gallery, client: redis.Redis, collection: str) -> None:
    rng = np.random.default_rng(2)
    faces = unit(4, rng)
    gallery.create_subject(collection, "carol", "Carol")
    gallery.create_subject(collection, "dave", "Dave")
    gallery.add_faces(collection, "carol", faces[:3])
    gallery.add_faces(collection, "dave", faces[3:])
    assert indexed(client, collection) == 4
    assert gallery.identify(collection, faces[:1], threshold=0.9)[0][0].subject_id == "carol"

    assert gallery.delete_subject(collection, "carol") is True
    assert indexed(client, collection) == 1
    assert all(m.subject_id != "carol" for m in gallery.identify(collection, faces[:1], top_k=5)[0])
    assert not client.exists(Keys(collection).subject("carol"), Keys(collection).faces("carol"))
    with pytest.raises(NotFound):
        gallery.get_subject(collection, "carol")
    assert gallery.delete_subject(collection, "carol") is False
    assert [s.subject_id for s in gallery.list_subjects(collection)[0]] == ["dave"]


def test_add_and_delete_face(gallery: Gallery, client: redis.Redis, collection: str) -> None:
    rng = np.random.default_rng(3)
    faces = unit(2, rng)
    gallery.create_subject(collection, "erin", "Erin")
    kept, dropped = gallery.add_faces(collection, "erin", faces)
    assert gallery.delete_face(collection, "erin", dropped) is True
    assert gallery.delete_face(collection, "erin", dropped) is False
    assert gallery.delete_face(collection, "someone-else", kept) is False
    assert gallery.get_subject(collection, "erin").face_ids == [kept]
    assert indexed(client, collection) == 1
    assert gallery.identify(collection, faces[1:], threshold=0.9) == [[]]
    [match] = gallery.identify(collection, faces[:1], threshold=0.9)[0]
    assert (match.face_id, match.name) == (kept, "Erin")
    assert match.similarity == pytest.approx(1.0, abs=1e-5)


def test_identify_top_k_threshold_and_one_match_per_subject(gallery: Gallery, collection: str) -> None:
    rng = np.random.default_rng(4)
    anchor = unit(1, rng)
    # Subject i's faces sit at decreasing similarity to the anchor; "many" has 30 faces nearer than anyone
    # else's, which must collapse to one match without crowding the other subjects out of top_k.
    gallery.create_subject(collection, "many", "Many Faces")
    gallery.add_faces(collection, "many", _toward(anchor, unit(30, rng), 0.95))
    for i, similarity in enumerate([0.9, 0.8, 0.7]):
        gallery.create_subject(collection, f"p{i}", f"Person {i}")
        gallery.add_faces(collection, f"p{i}", _toward(anchor, unit(1, rng), similarity))

    [matches] = gallery.identify(collection, anchor, top_k=3)
    assert [m.subject_id for m in matches] == ["many", "p0", "p1"]
    assert [m.similarity for m in matches] == sorted((m.similarity for m in matches), reverse=True)
    assert matches[1].similarity == pytest.approx(0.9, abs=1e-3)
    assert -1.0 <= matches[-1].similarity <= 1.0

    [matches] = gallery.identify(collection, anchor, top_k=10, threshold=0.75)
    assert [m.subject_id for m in matches] == ["many", "p0", "p1"]
    # An unrelated face is not forced onto the nearest subject.
    assert gallery.identify(collection, unit(1, rng), top_k=5, threshold=0.5) == [[]]
    with pytest.raises(InvalidArgument):
        gallery.identify(collection, anchor, top_k=0)
    with pytest.raises(InvalidArgument):
        gallery.identify(collection, anchor * 3)  # not L2-normalised
    with pytest.raises(InvalidArgument):
        gallery.identify(collection, unit(1, rng)[:, :64])


def _toward(anchor: np.ndarray, others: np.ndarray, similarity: float) -> np.ndarray:
    """Unit vectors at exactly `similarity` cosine to anchor (1, dim), in random directions."""
    a = anchor[0]
    orthogonal = _normalise(others - np.outer(others @ a, a))
    return _normalise(similarity * a + np.sqrt(1 - similarity**2) * orthogonal)


def test_collections_are_isolated(gallery: Gallery, client: redis.Redis) -> None:
    rng = np.random.default_rng(5)
    a, b = f"tenant-a-{uuid.uuid4().hex[:8]}", f"tenant-b-{uuid.uuid4().hex[:8]}"
    face_a, face_b = unit(2, rng)
    for collection, face in ((a, face_a), (b, face_b)):
        gallery.create_subject(collection, "same-id", f"in {collection}")
        gallery.add_faces(collection, "same-id", face[None])
    [[match]] = gallery.identify(a, face_b[None], top_k=5)
    assert match.name == f"in {a}" and match.similarity < 0.5
    assert gallery.identify(a, face_b[None], threshold=0.5) == [[]]
    assert gallery.get_subject(b, "same-id").face_ids != gallery.get_subject(a, "same-id").face_ids
    assert indexed(client, a) == indexed(client, b) == 1
    gallery.delete_subject(a, "same-id")
    assert gallery.get_subject(b, "same-id").name == f"in {b}"


def test_a_different_model_version_is_refused(gallery: Gallery, client: redis.Redis, collection: str) -> None:
    rng = np.random.default_rng(6)
    gallery.create_subject(collection, "frank", "Frank")
    gallery.add_faces(collection, "frank", unit(1, rng))
    newer = Gallery(client, MODEL, "v2", DIM)
    with pytest.raises(ModelMismatch, match=f"{MODEL}@{VERSION}.*{MODEL}@v2"):
        newer.identify(collection, unit(1, rng))
    with pytest.raises(ModelMismatch):
        newer.add_faces(collection, "frank", unit(1, rng))
    with pytest.raises(ModelMismatch, match="64-d"):
        Gallery(client, MODEL, VERSION, 64).add_faces(collection, "frank", _normalise(unit(1, rng)[:, :64]))
    # The stored vectors carry the model too.
    [face_id] = gallery.get_subject(collection, "frank").face_ids
    assert client.hget(Keys(collection).vector(face_id), "model") == f"{MODEL}@{VERSION}".encode()
    # Reading and deleting still work, so a collection can be cleaned up before re-enrolment.
    assert newer.get_subject(collection, "frank").name == "Frank"
    assert newer.delete_subject(collection, "frank") is True


@pytest.mark.parametrize(
    "bad", ["", "a" * 65, "../etc/passwd", "a/b", "a:b", "{x}", "a*", "with space", "é", "a\x00b", "tag|x"]
)
def test_invalid_ids_are_refused(gallery: Gallery, client: redis.Redis, bad: str) -> None:
    before = client.dbsize()
    ok = np.zeros((1, DIM), np.float32)
    ok[0, 0] = 1.0
    with pytest.raises(InvalidId):
        gallery.create_subject(bad, "x", "X")
    with pytest.raises(InvalidId):
        gallery.create_subject("ok", bad, "X")
    with pytest.raises(InvalidId):
        gallery.identify(bad, ok)
    with pytest.raises(InvalidId):
        gallery.delete_face("ok", "x", bad)
    with pytest.raises(InvalidId):
        gallery.list_subjects(bad)
    assert client.dbsize() == before


def test_two_thousand_faces_pipelined_then_noisy_copies_identify_their_subject(
    gallery: Gallery, client: redis.Redis, collection: str
) -> None:
    rng = np.random.default_rng(7)
    faces = unit(2000, rng)
    # One subject's 1,000 faces in one call (a single MULTI/EXEC of 1,000 HSETs), then 50 subjects × 20.
    owners = np.concatenate([np.zeros(1000, int), np.repeat(np.arange(1, 51), 20)])
    for s in range(51):
        gallery.create_subject(collection, f"subject-{s:02d}", f"Subject {s}")
        gallery.add_faces(collection, f"subject-{s:02d}", faces[owners == s])
    assert indexed(client, collection) == 2000

    queries = noisy(faces, rng)
    assert float(np.median(np.sum(queries * faces, axis=1))) > 0.8
    results = gallery.identify(collection, queries, top_k=1, threshold=0.5)
    found = [r[0].subject_id if r else None for r in results]
    recall = np.mean([f == f"subject-{o:02d}" for f, o in zip(found, owners, strict=True)])
    assert gallery.ef_runtime == 100
    assert recall >= 0.99


def test_a_subject_deleted_mid_enrolment_gets_no_vectors(
    gallery: Gallery, client: redis.Redis, collection: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """add_faces WATCHes the subject: a delete landing between its check and its EXEC aborts the batch, which
    then retries, finds no subject and writes nothing (no orphan vectors in the index)."""
    gallery.create_subject(collection, "gina", "Gina")
    keys = Keys(collection)
    original = redis.client.Pipeline.exists
    raced = []

    def exists_then_delete(pipe: redis.client.Pipeline, *names: str) -> int:
        found = original(pipe, *names)
        if not raced:
            raced.append(True)
            client.delete(keys.subject("gina"))  # another connection, between WATCH and EXEC
        return found

    monkeypatch.setattr(redis.client.Pipeline, "exists", exists_then_delete)
    with pytest.raises(NotFound):
        gallery.add_faces(collection, "gina", unit(5, np.random.default_rng(8)))
    assert raced and indexed(client, collection) == 0
    assert not client.exists(keys.faces("gina"))


def test_ef_runtime_grows_with_the_collection() -> None:
    gallery = Gallery(redis.Redis(protocol=2), MODEL, VERSION, DIM)  # never connects
    ladder = {faces: gallery.ef_for(faces) for faces in (0, 1_000, 100_000, 499_999, 500_000, 999_999, 10**6, 10**7)}
    assert ladder[0] == ladder[1_000] == ladder[100_000] == ladder[499_999] == gallery.ef_runtime == 100
    assert [ladder[n] for n in (500_000, 999_999, 10**6, 10**7)] == [200, 200, 300, 300]
    # the configured EF_RUNTIME is a floor; no steps: always the configured one
    assert Gallery(redis.Redis(protocol=2), MODEL, VERSION, DIM, ef_runtime=500).ef_for(600_000) == 500
    assert Gallery(redis.Redis(protocol=2), MODEL, VERSION, DIM, ef_by_size=()).ef_for(10**7) == 100


def test_new_collections_get_the_benchmarked_index(gallery: Gallery, client: redis.Redis, collection: str) -> None:
    gallery.create_subject(collection, "ivy", "Ivy")
    reply = client.execute_command("FT.INFO", Keys(collection).index)
    info = dict(zip(reply[::2], reply[1::2], strict=True))
    [vec] = [a for a in info[b"attributes"] if a[1] == b"vec"]
    fields = dict(zip(vec[::2], vec[1::2], strict=True))
    assert (fields[b"algorithm"], fields[b"distance_metric"]) == (b"HNSW", b"COSINE")
    assert (fields[b"M"], fields[b"ef_construction"]) == (32, 100)


def test_identify_searches_as_broadly_as_the_collection_size_wants(
    client: redis.Redis, collection: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EF_RUNTIME follows the face count that comes back with the search: a collection first seen, or grown past a
    step since the last search, is searched again with the broader EF_RUNTIME; the next search asks right away."""
    gallery = Gallery(client, MODEL, VERSION, DIM, ef_runtime=20, ef_by_size=((30, 150),))
    rng = np.random.default_rng(11)
    faces = unit(40, rng)
    gallery.create_subject(collection, "many", "Many")
    gallery.add_faces(collection, "many", faces[:10])
    sent: list[int] = []
    original = Gallery._search

    def spy(self: Gallery, target: object, keys: Keys, query: np.ndarray, knn: int, ef: int) -> object:
        sent.append(ef)
        return original(self, target, keys, query, knn, ef)

    monkeypatch.setattr(Gallery, "_search", spy)
    assert gallery.identify(collection, faces[:2], threshold=0.9)[0][0].subject_id == "many"
    assert sent == [20, 20]  # 10 faces: the configured EF_RUNTIME, one round of searches

    gallery.add_faces(collection, "many", faces[10:])  # 40 faces now, past the step
    sent.clear()
    [[match], _] = gallery.identify(collection, faces[:2], threshold=0.9)
    assert (match.subject_id, round(match.similarity, 4)) == ("many", 1.0)
    assert sent == [20, 20, 150, 150]  # guessed from the last search (10 faces), then asked again broader
    sent.clear()
    gallery.identify(collection, faces[:1])
    assert sent == [150]  # known now

    fresh = Gallery(client, MODEL, VERSION, DIM, ef_runtime=20, ef_by_size=((30, 150),))  # another replica
    sent.clear()
    assert fresh.search(collection, faces[:1], threshold=0.9).faces == 40
    assert sent == [20, 150]
