"""Galleries in Redis 8: collections of subjects, each with enrolled face embeddings, searched 1:N through a
RediSearch HNSW (cosine) index. Plain Python over redis-py; knows nothing of gRPC or HTTP.

Key layout, per collection `c` (ids are validated, so a key or index name can never be forged or escape its
collection: no `:`, `{`, `}`, `*` or `/` reach Redis):

    fp:{c}:meta          hash  model, dim: the embedding model the collection is built with; faces: how many
                              face vectors it holds (kept in the same transactions that add and delete them)
    fp:{c}:idx           RediSearch index over the prefix fp:{c}:v:  (one index per collection)
    fp:{c}:subjects      zset  every subject id, score 0: lexicographic order for stable pagination
    fp:{c}:s:<subject>   hash  subject_id, name
    fp:{c}:sf:<subject>  set   the subject's face ids
    fp:{c}:v:<face>      hash  vec (float32 bytes), subject, model

`{c}` is a Redis Cluster hash tag: every key of one collection lives in one slot, so the MULTI/EXEC
transactions below stay legal on a cluster.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import redis
from redis.client import Pipeline

from services.runtime.error_codes import ErrorCode
from services.runtime.errors import ServiceError
from services.runtime.tracing import traced

ID_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}")
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
MAX_TOP_K = 100
# KNN asks for top_k × this many faces so that several faces of one subject can collapse to one match
# without losing the next subjects; when that is not enough it asks again for more, up to MAX_KNN.
OVERFETCH = 4
MAX_KNN = 4096
# Each collection's HNSW index (fixed when the collection is created). M 32 rather than RediSearch's 16: at a million
# faces M 16 needs EF_RUNTIME 800 for recall@1 0.99 (~7 ms a search on the development machine), M 32 needs 200-300
# (~3-4 ms), at twice the enrolment (and restart) time and ~8% more memory; EF_CONSTRUCTION 100 rather than 200
# builds ~1.4x faster and loses less than M 16 -> 32 gains (bench/results/gallery.json, docs/performance.md).
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 100
# A larger graph needs a broader search for the same recall: (from this many faces, at least this EF_RUNTIME), so
# that identify keeps recall@1 >= 0.99 on mated searches at p99 <= 10 ms up to a million faces with the index above.
# The configured EF_RUNTIME (100) is the floor, and covers collections up to 500,000 faces.
EF_RUNTIME_BY_SIZE: tuple[tuple[int, int], ...] = ((500_000, 200), (1_000_000, 300))
# Collections whose last face count each Gallery remembers (to pick EF_RUNTIME before the search's own count comes).
KNOWN_SIZES = 10_000
# Embeddings must be unit vectors: the cosine index would accept anything, but a caller that forgot to
# normalise is a bug we want to hear about.
NORM_TOLERANCE = 1e-3

# What a gallery operation's span (one per operation, its round trips inside; when tracing is on) says it talks to.
REDIS = {"db.system.name": "redis"}

T = TypeVar("T")
# (face_id, subject_id, cosine similarity)
Hit = tuple[str, str, float]
# A fixed threshold, or one computed from the collection's face count (open-set identification).
Threshold = float | Callable[[int], float]


class GalleryError(ServiceError):
    """Base of every error the gallery raises on purpose; each kind carries the code its caller is answered with."""


class NotFound(GalleryError):
    code = ErrorCode.NOT_FOUND


class AlreadyExists(GalleryError):
    code = ErrorCode.ALREADY_EXISTS


class InvalidArgument(GalleryError, ValueError):
    code = ErrorCode.INVALID_ARGUMENT


class InvalidId(InvalidArgument):
    pass


class ModelMismatch(GalleryError):
    code = ErrorCode.MODEL_MISMATCH


@dataclass(frozen=True)
class Subject:
    collection: str
    subject_id: str
    name: str
    face_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Match:
    subject_id: str
    name: str
    # Cosine similarity in [-1, 1] (1 − RediSearch's cosine distance).
    similarity: float
    face_id: str


@dataclass(frozen=True)
class Identification:
    """identify's answer: per query face its matches, and what decided them."""

    matches: list[list[Match]]
    faces: int  # face vectors in the collection when it was searched
    threshold: float  # the similarity a match needed


@dataclass(frozen=True)
class Keys:
    """Every Redis name of one collection."""

    collection: str

    @property
    def _base(self) -> str:
        return f"fp:{{{self.collection}}}"

    @property
    def meta(self) -> str:
        return f"{self._base}:meta"

    @property
    def index(self) -> str:
        return f"{self._base}:idx"

    @property
    def subjects(self) -> str:
        return f"{self._base}:subjects"

    @property
    def vector_prefix(self) -> str:
        return f"{self._base}:v:"

    def subject(self, subject_id: str) -> str:
        return f"{self._base}:s:{subject_id}"

    def faces(self, subject_id: str) -> str:
        return f"{self._base}:sf:{subject_id}"

    def vector(self, face_id: str) -> str:
        return f"{self.vector_prefix}{face_id}"


def validate_id(value: str, what: str) -> str:
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        shown = value[:80] + "…" if isinstance(value, str) and len(value) > 80 else value
        raise InvalidId(f"{what} {shown!r} is invalid: use 1 to 64 characters of A-Z a-z 0-9 _ . -")
    return value


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class Gallery:
    def __init__(
        self,
        client: redis.Redis,
        model_name: str,
        model_version: str,
        dim: int,
        ef_runtime: int = 100,
        m: int = HNSW_M,
        ef_construction: int = HNSW_EF_CONSTRUCTION,
        ef_by_size: tuple[tuple[int, int], ...] = EF_RUNTIME_BY_SIZE,
    ) -> None:
        if client.get_connection_kwargs().get("decode_responses"):
            raise ValueError("the gallery needs a redis client with decode_responses=False (vectors are bytes)")
        self.client = client
        self.model = f"{model_name}@{model_version}"
        self.dim = int(dim)
        # The floor of EF_RUNTIME_BY_SIZE; RediSearch's default (10) loses recall as a gallery grows (recall@1 0.58
        # at 100k faces: docs/performance.md).
        self.ef_runtime = int(ef_runtime)
        self.ef_by_size = tuple(sorted((int(n), int(ef)) for n, ef in ef_by_size))
        self.m = int(m)
        self.ef_construction = int(ef_construction)
        self._sizes: dict[str, int] = {}  # collection → its face count at the last search

    def ef_for(self, faces: int) -> int:
        """The EF_RUNTIME identify uses in a collection of `faces` faces: the configured one, or more for a large
        collection (EF_RUNTIME_BY_SIZE)."""
        return max([self.ef_runtime, *(ef for n, ef in self.ef_by_size if faces >= n)])

    # Subjects

    @traced("gallery create_subject", REDIS)
    def create_subject(self, collection: str, subject_id: str, name: str) -> Subject:
        keys = self._keys(collection)
        validate_id(subject_id, "subject_id")
        self._ensure_collection(keys)

        def write(pipe: Pipeline) -> None:
            if pipe.exists(keys.subject(subject_id)):
                raise AlreadyExists(f"subject {subject_id!r} already exists in collection {collection!r}")
            pipe.multi()
            pipe.hset(keys.subject(subject_id), mapping={"subject_id": subject_id, "name": name})
            pipe.zadd(keys.subjects, {subject_id: 0})

        self._transaction(write, keys.subject(subject_id))
        return Subject(collection, subject_id, name, [])

    @traced("gallery get_subject", REDIS)
    def get_subject(self, collection: str, subject_id: str) -> Subject:
        keys = self._keys(collection)
        validate_id(subject_id, "subject_id")
        subject = self._load_subjects(keys, [subject_id])[0]
        if subject is None:
            raise NotFound(f"no subject {subject_id!r} in collection {collection!r}")
        return subject

    @traced("gallery list_subjects", REDIS)
    def list_subjects(
        self, collection: str, page_size: int = DEFAULT_PAGE_SIZE, page_token: str = ""
    ) -> tuple[list[Subject], str]:
        """One page in subject id order; the token is "" after the last page. Stable under concurrent
        writes: a token names the last subject seen, not an offset."""
        keys = self._keys(collection)
        page_size = page_size or DEFAULT_PAGE_SIZE
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise InvalidArgument(f"page_size must be 1..{MAX_PAGE_SIZE}, got {page_size}")
        if not self.client.exists(keys.meta):
            raise NotFound(f"no collection {collection!r}")
        start = b"(" + _decode_token(page_token).encode() if page_token else b"-"
        ids = [_text(i) for i in self.client.zrangebylex(keys.subjects, start, b"+", 0, page_size + 1)]
        page, more = ids[:page_size], len(ids) > page_size
        subjects = [s for s in self._load_subjects(keys, page) if s is not None]
        return subjects, _encode_token(page[-1]) if more else ""

    @traced("gallery delete_subject", REDIS)
    def delete_subject(self, collection: str, subject_id: str) -> bool:
        """Removes the subject and every one of its vectors in one transaction."""
        keys = self._keys(collection)
        validate_id(subject_id, "subject_id")

        def delete(pipe: Pipeline) -> bool:
            if not pipe.exists(keys.subject(subject_id)):
                return False
            face_ids = [_text(f) for f in pipe.smembers(keys.faces(subject_id))]
            counted = pipe.hexists(keys.meta, "faces")
            pipe.multi()
            for chunk in _chunks([keys.vector(f) for f in face_ids], 1000):
                pipe.delete(*chunk)
            pipe.delete(keys.faces(subject_id), keys.subject(subject_id))
            pipe.zrem(keys.subjects, subject_id)
            if face_ids and counted:
                pipe.hincrby(keys.meta, "faces", -len(face_ids))
            return True

        return self._transaction(delete, keys.subject(subject_id), keys.faces(subject_id))

    # Faces

    @traced("gallery add_faces", REDIS)
    def add_faces(self, collection: str, subject_id: str, embeddings: np.ndarray) -> list[str]:
        """Enrols (N, dim) L2-normalised embeddings for an existing subject: one pipelined MULTI/EXEC, so the
        subject and its vectors are never half-written (a concurrent delete of the subject makes it retry and
        then fail with NotFound)."""
        keys = self._keys(collection)
        validate_id(subject_id, "subject_id")
        vectors = self._check_embeddings(embeddings)
        self._check_model(keys)
        face_ids = [uuid.uuid4().hex for _ in range(len(vectors))]

        def write(pipe: Pipeline) -> None:
            if not pipe.exists(keys.subject(subject_id)):
                raise NotFound(f"no subject {subject_id!r} in collection {collection!r}")
            counted = pipe.hexists(keys.meta, "faces")
            pipe.multi()
            for face_id, vector in zip(face_ids, vectors, strict=True):
                pipe.hset(
                    keys.vector(face_id),
                    mapping={"vec": vector.tobytes(), "subject": subject_id, "model": self.model},
                )
            if face_ids:
                pipe.sadd(keys.faces(subject_id), *face_ids)
                if counted:
                    pipe.hincrby(keys.meta, "faces", len(face_ids))

        self._transaction(write, keys.subject(subject_id))
        return face_ids

    @traced("gallery subject_similarity", REDIS)
    def subject_similarity(self, collection: str, subject_id: str, embedding: np.ndarray) -> float:
        """The best cosine similarity between one L2-normalised embedding and the subject's enrolled faces (1:1
        verification against a person; a subject holds a handful of faces, so they are compared here)."""
        keys = self._keys(collection)
        validate_id(subject_id, "subject_id")
        (query,) = self._check_embeddings(np.asarray(embedding).reshape(1, -1))
        self._check_model(keys)
        pipe = self.client.pipeline(transaction=False)
        pipe.exists(keys.subject(subject_id))
        pipe.smembers(keys.faces(subject_id))
        exists, face_ids = pipe.execute()
        if not exists:
            raise NotFound(f"no subject {subject_id!r} in collection {collection!r}")
        if not face_ids:
            raise InvalidArgument(f"subject {subject_id!r} has no enrolled faces to verify against")
        pipe = self.client.pipeline(transaction=False)
        for face_id in sorted(_text(f) for f in face_ids):
            pipe.hget(keys.vector(face_id), "vec")
        found = [np.frombuffer(v, dtype=np.float32) for v in pipe.execute() if v is not None]
        if not found:  # its faces were deleted between the two round trips
            raise InvalidArgument(f"subject {subject_id!r} has no enrolled faces to verify against")
        return float(np.clip(np.stack(found) @ query, -1.0, 1.0).max())

    @traced("gallery delete_face", REDIS)
    def delete_face(self, collection: str, subject_id: str, face_id: str) -> bool:
        keys = self._keys(collection)
        validate_id(subject_id, "subject_id")
        validate_id(face_id, "face_id")

        def delete(pipe: Pipeline) -> bool:
            if not pipe.sismember(keys.faces(subject_id), face_id):
                return False
            counted = pipe.hexists(keys.meta, "faces")
            pipe.multi()
            pipe.delete(keys.vector(face_id))
            pipe.srem(keys.faces(subject_id), face_id)
            if counted:
                pipe.hincrby(keys.meta, "faces", -1)
            return True

        return self._transaction(delete, keys.faces(subject_id))

    # Search

    def identify(
        self, collection: str, embeddings: np.ndarray, top_k: int = 1, threshold: float = -1.0
    ) -> list[list[Match]]:
        """Per query face, up to top_k subjects (best face of each) whose cosine similarity ≥ threshold,
        best first; an unknown face gets []. All queries go to Redis in one pipelined round trip."""
        return self.search(collection, embeddings, top_k, threshold).matches

    @traced("gallery search", REDIS)
    def search(
        self, collection: str, embeddings: np.ndarray, top_k: int = 1, threshold: Threshold = -1.0
    ) -> Identification:
        """identify, with the threshold fixed or computed from the collection's face count, which comes with the
        search in the same round trip (a counter in the collection's metadata)."""
        keys = self._keys(collection)
        queries = self._check_embeddings(embeddings)
        if not 1 <= top_k <= MAX_TOP_K:
            raise InvalidArgument(f"top_k must be 1..{MAX_TOP_K}, got {top_k}")
        if not callable(threshold):
            _check_threshold(threshold)
        knn = top_k * OVERFETCH
        # EF_RUNTIME follows the collection's size, which comes back with the search: guess it from the last search
        # (a collection first seen: the smallest) and search again in the rare case the guess was wrong.
        ef = self.ef_for(self._sizes.get(collection, 0))
        pipe = self.client.pipeline(transaction=False)
        pipe.hmget(keys.meta, "model", "dim", "faces")
        for query in queries:
            self._search(pipe, keys, query, knn, ef)
        (model, dim, counted), *replies = pipe.execute(raise_on_error=False)
        self._check_meta(keys, [model, dim])
        faces = int(counted) if counted is not None else self._indexed_faces(keys)
        self._remember(collection, faces)
        if self.ef_for(faces) != ef:
            ef = self.ef_for(faces)
            pipe = self.client.pipeline(transaction=False)
            for query in queries:
                self._search(pipe, keys, query, knn, ef)
            replies = pipe.execute(raise_on_error=False)
        cut = _check_threshold(threshold(faces)) if callable(threshold) else threshold
        best = [
            _collapse(self._widen(keys, query, self._hits(reply), knn, top_k, cut, ef), top_k, cut)
            for query, reply in zip(queries, replies, strict=True)
        ]
        return Identification(self._named(keys, best), faces, cut)

    @traced("gallery count_faces", REDIS)
    def count_faces(self, collection: str) -> int:
        """How many face vectors the collection holds."""
        keys = self._keys(collection)
        model, dim, counted = self.client.hmget(keys.meta, "model", "dim", "faces")
        self._check_meta(keys, [model, dim])
        return int(counted) if counted is not None else self._indexed_faces(keys)

    def _widen(
        self, keys: Keys, query: np.ndarray, hits: list[Hit], knn: int, top_k: int, threshold: float, ef: int
    ) -> list[Hit]:
        """Asks again for more neighbours while a full page of qualifying faces covers fewer than top_k subjects
        (a subject with many faces can crowd the others out)."""
        while len(hits) == knn < MAX_KNN and _needs_more(hits, top_k, threshold):
            knn = min(knn * OVERFETCH, MAX_KNN)
            hits = self._hits(self._search(self.client, keys, query, knn, ef))
        return hits

    # Internals

    def _remember(self, collection: str, faces: int) -> None:
        if collection not in self._sizes and len(self._sizes) >= KNOWN_SIZES:
            self._sizes.clear()  # many collections: forget them all rather than grow without bound
        self._sizes[collection] = faces

    def _indexed_faces(self, keys: Keys) -> int:
        """A collection made before the counter existed (its metadata has no `faces`, and never will: the counter
        is set only when a collection is created): the index's document count, FT.INFO, one more round trip."""
        info = self.client.execute_command("FT.INFO", keys.index)
        fields = dict(zip(map(_text, info[::2]), info[1::2], strict=True))
        return int(fields["num_docs"])

    def _keys(self, collection: str) -> Keys:
        return Keys(validate_id(collection, "collection"))

    def _transaction(self, fn: Callable[[Pipeline], T], *watch: str) -> T:
        """fn reads under WATCH, calls pipe.multi() and queues writes; retried if a watched key changed."""
        return self.client.transaction(fn, *watch, value_from_callable=True)

    def _ensure_collection(self, keys: Keys) -> None:
        """Creates the collection's metadata and vector index on first use; refuses a model mismatch."""
        meta = self.client.hmget(keys.meta, "model", "dim")
        if meta[0] is not None:
            self._check_meta(keys, meta)
            return
        self._create_index(keys)

        def claim(pipe: Pipeline) -> None:
            if pipe.exists(keys.meta):
                return
            pipe.multi()
            pipe.hset(keys.meta, mapping={"model": self.model, "dim": self.dim, "faces": 0})

        self._transaction(claim, keys.meta)
        self._check_model(keys)

    def _create_index(self, keys: Keys) -> None:
        try:
            self.client.execute_command(
                "FT.CREATE", keys.index, "ON", "HASH", "PREFIX", "1", keys.vector_prefix,
                "SCHEMA",
                "subject", "TAG",
                "model", "TAG",
                "vec", "VECTOR", "HNSW", "12",
                "TYPE", "FLOAT32", "DIM", self.dim, "DISTANCE_METRIC", "COSINE",
                "M", self.m, "EF_CONSTRUCTION", self.ef_construction, "EF_RUNTIME", self.ef_runtime,
            )  # fmt: skip
        except redis.ResponseError as error:
            if "already exists" not in str(error).lower():
                raise

    def _check_model(self, keys: Keys) -> None:
        self._check_meta(keys, self.client.hmget(keys.meta, "model", "dim"))

    def _check_meta(self, keys: Keys, meta: Any) -> None:  # a pipeline reply
        if isinstance(meta, Exception):
            raise meta
        model, dim = meta
        if model is None:
            raise NotFound(f"no collection {keys.collection!r}")
        if _text(model) != self.model or int(dim) != self.dim:
            raise ModelMismatch(
                f"collection {keys.collection!r} was built with embedding model {_text(model)} ({int(dim)}-d) "
                f"but this embedder runs {self.model} ({self.dim}-d): embeddings of different models are not "
                "comparable; re-enrol the collection with this model or serve it with the model it was built with"
            )

    def _check_embeddings(self, embeddings: np.ndarray) -> np.ndarray:
        vectors = np.asarray(embeddings)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise InvalidArgument(f"embeddings must have shape (N, {self.dim}), got {vectors.shape}")
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if not np.isfinite(vectors).all():
            raise InvalidArgument("embeddings contain NaN or infinity")
        norms = np.linalg.norm(vectors, axis=1)
        if len(norms) and np.abs(norms - 1.0).max() > NORM_TOLERANCE:
            raise InvalidArgument("embeddings must be L2-normalised")
        return vectors

    def _search(self, target: redis.Redis | Pipeline, keys: Keys, query: np.ndarray, knn: int, ef: int) -> Any:
        return target.execute_command(
            "FT.SEARCH", keys.index, "*=>[KNN $k @vec $q EF_RUNTIME $ef AS dist]",
            "PARAMS", "6", "k", knn, "q", query.tobytes(), "ef", max(ef, knn),
            "SORTBY", "dist", "ASC", "RETURN", "3", "dist", "subject", "model",
            "LIMIT", "0", knn, "DIALECT", "2",
        )  # fmt: skip

    def _hits(self, reply: Any) -> list[Hit]:
        """(face_id, subject_id, similarity), best first, from [total, key, [field, value, ...], ...]."""
        if isinstance(reply, Exception):
            raise reply
        hits = []
        for key, fields in zip(reply[1::2], reply[2::2], strict=True):
            values = dict(zip(map(_text, fields[::2]), fields[1::2], strict=True))
            if _text(values["model"]) != self.model:
                raise ModelMismatch(f"face {_text(key)} was enrolled with {_text(values['model'])}, not {self.model}")
            face_id = _text(key).rsplit(":", 1)[1]
            hits.append((face_id, _text(values["subject"]), 1.0 - float(values["dist"])))
        return hits

    def _named(self, keys: Keys, results: list[list[Hit]]) -> list[list[Match]]:
        """Attach subject names (one round trip); a subject deleted meanwhile drops out."""
        subject_ids = sorted({subject for hits in results for _, subject, _ in hits})
        pipe = self.client.pipeline(transaction=False)
        for subject_id in subject_ids:
            pipe.hget(keys.subject(subject_id), "name")
        names = dict(zip(subject_ids, pipe.execute() if subject_ids else [], strict=True))
        return [[Match(s, _text(names[s]), sim, f) for f, s, sim in hits if names[s] is not None] for hits in results]

    def _load_subjects(self, keys: Keys, subject_ids: list[str]) -> list[Subject | None]:
        pipe = self.client.pipeline(transaction=False)
        for subject_id in subject_ids:
            pipe.hget(keys.subject(subject_id), "name")
            pipe.smembers(keys.faces(subject_id))
        replies = pipe.execute() if subject_ids else []
        return [
            None if name is None else Subject(keys.collection, sid, _text(name), sorted(map(_text, faces)))
            for sid, name, faces in zip(subject_ids, replies[::2], replies[1::2], strict=True)
        ]


def _check_threshold(threshold: float) -> float:
    if not -1.0 <= threshold <= 1.0:
        raise InvalidArgument(f"threshold is a cosine similarity in [-1, 1], got {threshold}")
    return threshold


def _needs_more(hits: list[Hit], top_k: int, threshold: float) -> bool:
    """Every fetched face was good enough yet they cover fewer than top_k subjects: more may qualify."""
    return hits[-1][2] >= threshold and len({subject for _, subject, _ in hits}) < top_k


def _collapse(hits: list[Hit], top_k: int, threshold: float) -> list[Hit]:
    """The best face per subject, at or above the threshold, best first, at most top_k."""
    best: dict[str, Hit] = {}
    for face_id, subject_id, similarity in hits:
        if similarity < threshold or len(best) == top_k:
            break
        best.setdefault(subject_id, (face_id, subject_id, similarity))
    return list(best.values())


def _encode_token(subject_id: str) -> str:
    return base64.urlsafe_b64encode(subject_id.encode()).decode().rstrip("=")


def _decode_token(token: str) -> str:
    try:
        subject_id = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidArgument(f"invalid page_token {token[:80]!r}") from None
    if not ID_PATTERN.fullmatch(subject_id):
        raise InvalidArgument(f"invalid page_token {token[:80]!r}")
    return subject_id


def _chunks(items: list[T], size: int) -> Iterable[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
