"""An MLServer runtime for our ONNX files: ONNX Runtime on the CPU, one session per served model file.

MLServer (Seldon's Open Inference Protocol server) loads it from each model's model-settings.json, which
models.py writes (`"implementation": "deploy.kserve.mlserver_runtime.OnnxModel"`, `parameters.uri`: the ONNX
file). Runs inside MLServer's own environment, never in a service.
"""

from __future__ import annotations

import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.errors import MLServerError
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import get_model_uri


class OnnxModel(MLModel):
    async def load(self) -> bool:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self._session = ort.InferenceSession(
            await get_model_uri(self.settings), options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        feeds = {tensor.name: NumpyCodec.decode_input(tensor) for tensor in payload.inputs}
        if set(feeds) != self._inputs:
            raise MLServerError(f"inputs {sorted(feeds)} do not match the model's {sorted(self._inputs)}", 400)
        wanted = [o.name for o in payload.outputs or []] or [o.name for o in self._session.get_outputs()]
        try:
            values = self._session.run(wanted, feeds)
        except (ort.capi.onnxruntime_pybind11_state.InvalidArgument, ort.capi.onnxruntime_pybind11_state.Fail) as exc:
            raise MLServerError(str(exc), 400) from exc
        outputs = []
        for name, value in zip(wanted, values, strict=True):
            output = NumpyCodec.encode_output(name, value)
            output.shape = list(value.shape)  # the codec would turn a vector (N,) into a column (N, 1)
            outputs.append(output)
        return InferenceResponse(model_name=self.name, outputs=outputs)
