"""The Open Inference Protocol ("KServe v2") over gRPC, as Triton, KServe and MLServer serve it: every model file
is served as `<model>-<file key>`; tensors go as raw little-endian bytes, answers are read raw or typed."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from kserve_grpc import grpc_service_pb2 as oip
from kserve_grpc import grpc_service_pb2_grpc as oip_grpc

from services.runtime.backends.base import BackendError, BackendOptions
from services.runtime.backends.remote import (
    ModelServerBackend,
    array_from_bytes,
    array_from_values,
    little_endian_bytes,
)

DATATYPES = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "INT8": np.dtype(np.int8),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
}
NUMPY_TO_DATATYPE = {dtype: name for name, dtype in DATATYPES.items()}
TYPED_CONTENTS = {
    "BOOL": "bool_contents",
    "UINT8": "uint_contents",
    "INT8": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
}


def output_array(tensor: oip.ModelInferResponse.InferOutputTensor, raw: bytes | None, what: str) -> np.ndarray:
    if tensor.datatype not in DATATYPES:
        raise BackendError(f"{what}: unsupported datatype {tensor.datatype!r} of {tensor.name}")
    dtype = DATATYPES[tensor.datatype]
    shape = tuple(tensor.shape)
    if raw is not None:
        return array_from_bytes(raw, dtype, shape, f"{what} {tensor.name}")
    if tensor.datatype not in TYPED_CONTENTS:
        raise BackendError(f"{what}: {tensor.datatype} output {tensor.name} came without raw contents")
    return array_from_values(getattr(tensor.contents, TYPED_CONTENTS[tensor.datatype]), dtype, shape, what)


class KServeV2Backend(ModelServerBackend):
    kind = "kserve_v2"
    server = "the Open Inference Protocol's gRPC API"

    def __init__(self, path: Path, served: str, options: BackendOptions) -> None:
        super().__init__(path, served, options)
        self._stub = oip_grpc.GRPCInferenceServiceStub(self.channel)

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        request = oip.ModelInferRequest(
            model_name=self.served,
            outputs=[oip.ModelInferRequest.InferRequestedOutputTensor(name=n) for n in self.output_names],
        )
        for name, value in inputs.items():
            if value.dtype not in NUMPY_TO_DATATYPE:
                raise BackendError(f"kserve_v2: no datatype for {value.dtype}")
            request.inputs.add(name=name, datatype=NUMPY_TO_DATATYPE[value.dtype], shape=value.shape)
            request.raw_input_contents.append(little_endian_bytes(value))
        reply = self.call(self._stub.ModelInfer, request)
        what = f"kserve_v2 {self.served}"
        raw = list(reply.raw_output_contents)
        if raw and len(raw) != len(reply.outputs):
            raise BackendError(f"{what}: {len(raw)} raw contents for {len(reply.outputs)} outputs")
        return self.outputs_of(
            {t.name: output_array(t, raw[i] if raw else None, what) for i, t in enumerate(reply.outputs)}
        )
