"""TF Serving over its gRPC `PredictionService.Predict`: every model file is a SavedModel served as `<model>-<file
key>` (`make tfserving-models`), signature `serving_default`, with the ONNX graph's input and output names."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from tfserving_grpc import prediction_service_pb2, prediction_service_pb2_grpc, tensor_pb2

from services.runtime.backends.base import BackendError, BackendOptions
from services.runtime.backends.remote import (
    ModelServerBackend,
    array_from_bytes,
    array_from_values,
    little_endian_bytes,
)

NUMPY_TO_TF = {
    np.dtype(np.float32): tensor_pb2.DT_FLOAT,
    np.dtype(np.float64): tensor_pb2.DT_DOUBLE,
    np.dtype(np.float16): tensor_pb2.DT_HALF,
    np.dtype(np.uint8): tensor_pb2.DT_UINT8,
    np.dtype(np.int8): tensor_pb2.DT_INT8,
    np.dtype(np.int32): tensor_pb2.DT_INT32,
    np.dtype(np.int64): tensor_pb2.DT_INT64,
    np.dtype(np.bool_): tensor_pb2.DT_BOOL,
}
TF_TO_NUMPY = {tf_type: dtype for dtype, tf_type in NUMPY_TO_TF.items()}
# Where a TensorProto without tensor_content keeps each type's values.
TYPED_FIELDS = {
    tensor_pb2.DT_FLOAT: "float_val",
    tensor_pb2.DT_DOUBLE: "double_val",
    tensor_pb2.DT_HALF: "half_val",
    tensor_pb2.DT_UINT8: "int_val",
    tensor_pb2.DT_INT8: "int_val",
    tensor_pb2.DT_INT32: "int_val",
    tensor_pb2.DT_INT64: "int64_val",
    tensor_pb2.DT_BOOL: "bool_val",
}


def to_tensor_proto(array: np.ndarray) -> tensor_pb2.TensorProto:
    if array.dtype not in NUMPY_TO_TF:
        raise BackendError(f"tfserving: no TensorFlow type for {array.dtype}")
    shape = tensor_pb2.TensorShapeProto(dim=[tensor_pb2.TensorShapeProto.Dim(size=s) for s in array.shape])
    return tensor_pb2.TensorProto(
        dtype=NUMPY_TO_TF[array.dtype], tensor_shape=shape, tensor_content=little_endian_bytes(array)
    )


def from_tensor_proto(proto: tensor_pb2.TensorProto, what: str = "tfserving") -> np.ndarray:
    if proto.dtype not in TF_TO_NUMPY:
        raise BackendError(f"{what}: unsupported tensor type {tensor_pb2.DataType.Name(proto.dtype)}")
    dtype = TF_TO_NUMPY[proto.dtype]
    shape = tuple(d.size for d in proto.tensor_shape.dim)
    if proto.tensor_content:
        return array_from_bytes(proto.tensor_content, dtype, shape, what)
    values = getattr(proto, TYPED_FIELDS[proto.dtype])
    if proto.dtype == tensor_pb2.DT_HALF:  # half_val holds the fp16 bit patterns
        values = np.asarray(values, dtype=np.uint16).view(np.float16)
    size = int(np.prod(shape))
    if len(values) == 1 and size > 1:  # one value fills the whole tensor
        values = np.full(size, values[0], dtype=dtype)
    return array_from_values(values, dtype, shape, what)


class TfServingBackend(ModelServerBackend):
    kind = "tfserving"
    server = "TF Serving's gRPC API"

    def __init__(self, path: Path, served: str, options: BackendOptions) -> None:
        super().__init__(path, served, options)
        self._stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        request = prediction_service_pb2.PredictRequest(
            model_spec=prediction_service_pb2.ModelSpec(name=self.served, signature_name="serving_default"),
            inputs={name: to_tensor_proto(value) for name, value in inputs.items()},
            output_filter=self.output_names,
        )
        reply = self.call(self._stub.Predict, request)
        what = f"tfserving {self.served}"
        return self.outputs_of({name: from_tensor_proto(tensor, what) for name, tensor in reply.outputs.items()})
