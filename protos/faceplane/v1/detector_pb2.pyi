from faceplane.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DetectRequest(_message.Message):
    __slots__ = ("image", "min_confidence", "max_faces", "crops", "skip_detection")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    MIN_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    MAX_FACES_FIELD_NUMBER: _ClassVar[int]
    CROPS_FIELD_NUMBER: _ClassVar[int]
    SKIP_DETECTION_FIELD_NUMBER: _ClassVar[int]
    image: _common_pb2.Image
    min_confidence: float
    max_faces: int
    crops: _containers.RepeatedCompositeFieldContainer[_common_pb2.CropSpec]
    skip_detection: bool
    def __init__(self, image: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., min_confidence: _Optional[float] = ..., max_faces: _Optional[int] = ..., crops: _Optional[_Iterable[_Union[_common_pb2.CropSpec, _Mapping]]] = ..., skip_detection: _Optional[bool] = ...) -> None: ...

class DetectedFace(_message.Message):
    __slots__ = ("box", "confidence", "landmarks", "crops")
    BOX_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    LANDMARKS_FIELD_NUMBER: _ClassVar[int]
    CROPS_FIELD_NUMBER: _ClassVar[int]
    box: _common_pb2.Box
    confidence: float
    landmarks: _common_pb2.Landmarks
    crops: _containers.RepeatedCompositeFieldContainer[_common_pb2.FaceCrop]
    def __init__(self, box: _Optional[_Union[_common_pb2.Box, _Mapping]] = ..., confidence: _Optional[float] = ..., landmarks: _Optional[_Union[_common_pb2.Landmarks, _Mapping]] = ..., crops: _Optional[_Iterable[_Union[_common_pb2.FaceCrop, _Mapping]]] = ...) -> None: ...

class DetectResponse(_message.Message):
    __slots__ = ("width", "height", "faces", "model")
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    FACES_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    width: int
    height: int
    faces: _containers.RepeatedCompositeFieldContainer[DetectedFace]
    model: _common_pb2.ModelInfo
    def __init__(self, width: _Optional[int] = ..., height: _Optional[int] = ..., faces: _Optional[_Iterable[_Union[DetectedFace, _Mapping]]] = ..., model: _Optional[_Union[_common_pb2.ModelInfo, _Mapping]] = ...) -> None: ...
