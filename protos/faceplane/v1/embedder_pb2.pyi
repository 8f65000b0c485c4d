from faceplane.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Embedding(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class EmbedResponse(_message.Message):
    __slots__ = ("embeddings", "model")
    EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    embeddings: _containers.RepeatedCompositeFieldContainer[Embedding]
    model: _common_pb2.ModelInfo
    def __init__(self, embeddings: _Optional[_Iterable[_Union[Embedding, _Mapping]]] = ..., model: _Optional[_Union[_common_pb2.ModelInfo, _Mapping]] = ...) -> None: ...

class SubjectRef(_message.Message):
    __slots__ = ("collection", "subject_id")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    collection: str
    subject_id: str
    def __init__(self, collection: _Optional[str] = ..., subject_id: _Optional[str] = ...) -> None: ...

class VerifyRequest(_message.Message):
    __slots__ = ("face", "face2", "subject", "threshold")
    FACE_FIELD_NUMBER: _ClassVar[int]
    FACE2_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    face: _common_pb2.FaceCrop
    face2: _common_pb2.FaceCrop
    subject: SubjectRef
    threshold: float
    def __init__(self, face: _Optional[_Union[_common_pb2.FaceCrop, _Mapping]] = ..., face2: _Optional[_Union[_common_pb2.FaceCrop, _Mapping]] = ..., subject: _Optional[_Union[SubjectRef, _Mapping]] = ..., threshold: _Optional[float] = ...) -> None: ...

class VerifyResponse(_message.Message):
    __slots__ = ("similarity", "match", "threshold", "model")
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    MATCH_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    similarity: float
    match: bool
    threshold: float
    model: _common_pb2.ModelInfo
    def __init__(self, similarity: _Optional[float] = ..., match: _Optional[bool] = ..., threshold: _Optional[float] = ..., model: _Optional[_Union[_common_pb2.ModelInfo, _Mapping]] = ...) -> None: ...

class Subject(_message.Message):
    __slots__ = ("collection", "subject_id", "name", "face_ids")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    FACE_IDS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    subject_id: str
    name: str
    face_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, collection: _Optional[str] = ..., subject_id: _Optional[str] = ..., name: _Optional[str] = ..., face_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class CreateSubjectRequest(_message.Message):
    __slots__ = ("collection", "subject_id", "name")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    collection: str
    subject_id: str
    name: str
    def __init__(self, collection: _Optional[str] = ..., subject_id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class ListSubjectsRequest(_message.Message):
    __slots__ = ("collection", "page_size", "page_token")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    collection: str
    page_size: int
    page_token: str
    def __init__(self, collection: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSubjectsResponse(_message.Message):
    __slots__ = ("subjects", "next_page_token")
    SUBJECTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    subjects: _containers.RepeatedCompositeFieldContainer[Subject]
    next_page_token: str
    def __init__(self, subjects: _Optional[_Iterable[_Union[Subject, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class AddFacesRequest(_message.Message):
    __slots__ = ("collection", "subject_id", "crops")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    CROPS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    subject_id: str
    crops: _containers.RepeatedCompositeFieldContainer[_common_pb2.FaceCrop]
    def __init__(self, collection: _Optional[str] = ..., subject_id: _Optional[str] = ..., crops: _Optional[_Iterable[_Union[_common_pb2.FaceCrop, _Mapping]]] = ...) -> None: ...

class AddFacesResponse(_message.Message):
    __slots__ = ("face_ids",)
    FACE_IDS_FIELD_NUMBER: _ClassVar[int]
    face_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, face_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteFaceRequest(_message.Message):
    __slots__ = ("collection", "subject_id", "face_id")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    FACE_ID_FIELD_NUMBER: _ClassVar[int]
    collection: str
    subject_id: str
    face_id: str
    def __init__(self, collection: _Optional[str] = ..., subject_id: _Optional[str] = ..., face_id: _Optional[str] = ...) -> None: ...

class DeleteResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: bool
    def __init__(self, deleted: _Optional[bool] = ...) -> None: ...

class IdentifyRequest(_message.Message):
    __slots__ = ("collection", "crops", "top_k", "threshold")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    CROPS_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    collection: str
    crops: _containers.RepeatedCompositeFieldContainer[_common_pb2.FaceCrop]
    top_k: int
    threshold: float
    def __init__(self, collection: _Optional[str] = ..., crops: _Optional[_Iterable[_Union[_common_pb2.FaceCrop, _Mapping]]] = ..., top_k: _Optional[int] = ..., threshold: _Optional[float] = ...) -> None: ...

class Match(_message.Message):
    __slots__ = ("subject_id", "name", "similarity", "face_id", "false_match_probability")
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    FACE_ID_FIELD_NUMBER: _ClassVar[int]
    FALSE_MATCH_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    subject_id: str
    name: str
    similarity: float
    face_id: str
    false_match_probability: float
    def __init__(self, subject_id: _Optional[str] = ..., name: _Optional[str] = ..., similarity: _Optional[float] = ..., face_id: _Optional[str] = ..., false_match_probability: _Optional[float] = ...) -> None: ...

class IdentifyResult(_message.Message):
    __slots__ = ("matches",)
    MATCHES_FIELD_NUMBER: _ClassVar[int]
    matches: _containers.RepeatedCompositeFieldContainer[Match]
    def __init__(self, matches: _Optional[_Iterable[_Union[Match, _Mapping]]] = ...) -> None: ...

class IdentifyResponse(_message.Message):
    __slots__ = ("results", "model", "threshold", "gallery_faces")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    GALLERY_FACES_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[IdentifyResult]
    model: _common_pb2.ModelInfo
    threshold: float
    gallery_faces: int
    def __init__(self, results: _Optional[_Iterable[_Union[IdentifyResult, _Mapping]]] = ..., model: _Optional[_Union[_common_pb2.ModelInfo, _Mapping]] = ..., threshold: _Optional[float] = ..., gallery_faces: _Optional[int] = ...) -> None: ...
