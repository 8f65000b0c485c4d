"""A stand-in for the TF Serving binary: TF Serving's gRPC `PredictionService.Predict` over the SavedModels of a
model base path, built from tensorflow-serving-api's own stubs (not ours) and TensorFlow.

    python -m deploy.tfserving.server --model-base-path .cache/tfserving-models --port 8500   # TF environment

TF Serving itself cannot be installed on our machines; this server exists so that the tfserving backend is tested
against real SavedModels and a second, independent implementation of the wire format. It serves the highest
version folder of every model, the way TF Serving's default version policy does, and answers errors with the
status codes TF Serving uses (NOT_FOUND for an unknown model or signature, INVALID_ARGUMENT for bad inputs).
"""

from __future__ import annotations

import argparse
import logging
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

log = logging.getLogger("tfserving-standin")
DEFAULT_SIGNATURE = "serving_default"


class Servable:
    def __init__(self, name: str, version: int, path: Path) -> None:
        self.name = name
        self.version = version
        self.model = tf.saved_model.load(str(path))  # kept: the signatures hold only weak references to it
        self.signatures: dict[str, Any] = dict(self.model.signatures)


def load_servables(base: Path) -> dict[str, Servable]:
    servables = {}
    for model_dir in sorted(p for p in base.iterdir() if p.is_dir()):
        versions = [int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()]
        if versions:
            version = max(versions)
            servables[model_dir.name] = Servable(model_dir.name, version, model_dir / str(version))
            log.info("loaded %s version %d", model_dir.name, version)
    return servables


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, servables: dict[str, Servable]) -> None:
        self.servables = servables

    def Predict(
        self, request: predict_pb2.PredictRequest, context: grpc.ServicerContext
    ) -> predict_pb2.PredictResponse:
        spec = request.model_spec
        servable = self.servables.get(spec.name)
        if servable is None or (spec.HasField("version") and spec.version.value != servable.version):
            context.abort(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: {spec.name}")
        signature_name = spec.signature_name or DEFAULT_SIGNATURE
        signature = servable.signatures.get(signature_name)
        if signature is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Serving signature name: {signature_name!r} not found")
        expected = signature.structured_input_signature[1]
        if set(request.inputs) != set(expected):
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"inputs {sorted(request.inputs)} do not match the signature's {sorted(expected)}",
            )
        try:
            feeds = {}
            for name, proto in request.inputs.items():
                value = tf.constant(tf.make_ndarray(proto))
                if value.dtype != expected[name].dtype or not expected[name].shape.is_compatible_with(value.shape):
                    raise ValueError(
                        f"input {name}: {value.dtype.name}{value.shape} where {expected[name]} is expected"
                    )
                feeds[name] = value
            outputs = signature(**feeds)
        except (ValueError, TypeError, tf.errors.InvalidArgumentError) as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        wanted = set(request.output_filter) or set(outputs)
        unknown = wanted - set(outputs)
        if unknown:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"output_filter names unknown outputs {sorted(unknown)}")
        response = predict_pb2.PredictResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        response.model_spec.signature_name = signature_name
        for name in wanted:
            response.outputs[name].CopyFrom(tf.make_tensor_proto(outputs[name].numpy()))
        return response


def serve(base: Path, port: int, host: str = "127.0.0.1", threads: int = 0, workers: int = 4) -> None:
    if threads:  # TensorFlow's threads per op and ops at once (0: TensorFlow's default, every core)
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    servables = load_servables(base)
    options = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers), options=options)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(servables), server)
    server.add_insecure_port(f"{host}:{port}")
    server.start()
    log.info("serving %d models on %s:%d", len(servables), host, port)
    server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-base-path", type=Path, required=True)
    parser.add_argument("--port", type=int, default=8500)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--threads", type=int, default=0, help="TensorFlow threads (0: every core)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    serve(args.model_base_path, args.port, args.host, args.threads)


if __name__ == "__main__":
    main()
