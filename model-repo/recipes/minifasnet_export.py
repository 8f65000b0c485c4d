"""Export MiniFASNet, minivision's passive liveness networks (Silent-Face-Anti-Spoofing, Apache-2.0), to ONNX.

Needs torch, onnx and onnxruntime (in .venv; not service dependencies: this runs once, its output is committed):
    python -m recipes.minifasnet_export [--weights ../shared/weights/minifasnet] [--out model-repo/minifasnet]

Upstream ships two PyTorch state dicts (saved from nn.DataParallel, so every key starts with `module.`) and no
graph. The networks are declared here from the keys and tensor shapes and from the paper's description (Chen et
al., MiniFASNet: MobileFaceNet-style inverted bottlenecks, pruned to uneven widths): a 3×3/2 stem and a depthwise
3×3, three stride-2 bottlenecks each followed by a stage of residual bottlenecks (4, 6 and 2 of them), a 1×1 to
512 channels, a 5×5 depthwise "global" convolution over the remaining 5×5 map, a 128-d embedding with batch norm
and a 3-way classifier; V1SE adds a squeeze-excitation unit (reduction 4) to the last block of each stage. Both
state dicts load strictly.

Each network becomes its own ONNX file (opset 17, dynamic batch): `input` uint8 RGB (N, 80, 80, 3), the crop as
the detector cuts it, → `probabilities` float32 (N, 3), a softmax (class 1 = real face). The graph casts to
float and transposes to NCHW itself, and takes RGB because the RGB→BGR swap upstream's input needs is folded into
the first convolution's weights (its input channels reversed), so no value is rescaled: the network still sees
0–255 pixels, as trained. Every batch norm is folded into the layer before it (exact at inference; TF Serving's
converter takes BatchNormalization on 4-D input only, and the graph gets smaller). The recipe checks ONNX Runtime
against the unfolded PyTorch network fed upstream's way (BGR float NCHW) on the crops of the sample photos (YuNet's
box, through recipes.liveness_eval) and on random crops, records the sample crops and PyTorch's answers in
`samples.npz` for tests/test_minifasnet.py, and times each file.
"""

from __future__ import annotations

import argparse
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

from recipes.liveness_eval import INPUT_SIZE, MODEL_REPO, Face, liveness_crops, load_rgb, yunet

ONNX_IR_VERSION = 8  # onnxruntime 1.31 reads at most IR 13; 8 keeps older runtimes working too
OPSET = 17
WEIGHTS = Path("../shared/weights/minifasnet")  # from the project root, as the other recipes take ../shared
SE_REDUCTION = 4
EMBEDDING = 128
CLASSES = 3


@dataclass(frozen=True)
class Widths:
    """A pruned MiniFASNet's channel counts, as its state dict's shapes give them."""

    stem: int  # conv1 and conv2_dw
    # Per stage: (expansion of its stride-2 entry bottleneck, the stage's channels, expansion of each residual block).
    stages: tuple[tuple[int, int, tuple[int, ...]], ...]
    head: int  # conv_6_sep / conv_6_dw


@dataclass(frozen=True)
class Network:
    key: str  # the name of its file in the model folder and in [files]
    weights: str  # upstream's file name: <scale>_<height>x<width>_<architecture>.pth
    scale: float  # the crop: the detector's box scaled about its centre by this
    widths: Widths
    se: bool


# From the shapes in upstream's state dicts (upstream's `keep_dict` "1.8M_" and "1.8M").
NETWORKS = (
    Network(
        "v2",
        "2.7_80x80_MiniFASNetV2.pth",
        2.7,
        Widths(32, ((103, 64, (13, 13, 13, 13)), (231, 128, (231, 52, 26, 77, 26, 26)), (308, 128, (26, 26))), 512),
        se=False,
    ),
    Network(
        "v1se",
        "4_0_0_80x80_MiniFASNetV1SE.pth",
        4.0,
        Widths(32, ((103, 64, (13, 26, 13, 52)), (231, 128, (154, 52, 26, 52, 26, 26)), (308, 128, (26, 26))), 512),
        se=True,
    ),
)


# ---------------------------------------------------------------------------------------------------------------
# The networks (module names follow the state dicts' keys)


class ConvUnit(nn.Module):
    """Convolution (no bias), batch norm, PReLU unless `linear`."""

    def __init__(
        self, cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1, linear: bool = False
    ) -> None:
        super().__init__()
        padding = kernel // 2 if kernel == 3 else 0  # 3×3 keep the size; 1×1 and the 5×5 head are "valid"
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups, bias=False)
        self.bn: nn.Module = nn.BatchNorm2d(cout)
        self.prelu = None if linear else nn.PReLU(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        return x if self.prelu is None else self.prelu(x)


class Excitation(nn.Module):
    """Squeeze-excitation: channel weights from the global mean, through a bottleneck of 1×1 convs with batch norm."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        inner = channels // SE_REDUCTION
        self.fc1 = nn.Conv2d(channels, inner, 1, bias=False)
        self.bn1: nn.Module = nn.BatchNorm2d(inner)
        self.fc2 = nn.Conv2d(inner, channels, 1, bias=False)
        self.bn2: nn.Module = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = F.adaptive_avg_pool2d(x, 1)  # GlobalAveragePool in ONNX, which every backend of ours converts
        w = torch.relu(self.bn1(self.fc1(w)))
        return x * torch.sigmoid(self.bn2(self.fc2(w)))


class Bottleneck(nn.Module):
    """1×1 expansion, depthwise 3×3 (stride 1 or 2), linear 1×1 projection; a stride-1 block adds its input (after
    the excitation, where it has one)."""

    def __init__(self, cin: int, expand: int, cout: int, stride: int, excite: bool = False) -> None:
        super().__init__()
        self.conv = ConvUnit(cin, expand)
        self.conv_dw = ConvUnit(expand, expand, 3, stride, groups=expand)
        self.project = ConvUnit(expand, cout, linear=True)
        self.residual = stride == 1
        self.se_module = Excitation(cout) if excite else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.conv_dw(self.conv(x)))
        if self.se_module is not None:
            y = self.se_module(y)
        return x + y if self.residual else y


class Stage(nn.Module):
    def __init__(self, channels: int, expansions: tuple[int, ...], se: bool) -> None:
        super().__init__()
        last = len(expansions) - 1
        self.model = nn.Sequential(
            *(Bottleneck(channels, e, channels, 1, excite=se and i == last) for i, e in enumerate(expansions))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class MiniFASNet(nn.Module):
    """BGR float (N, 3, 80, 80), pixels 0–255 → logits (N, 3). 80 → 40 (stem) → 20 → 10 → 5 → 1 (the 5×5 head)."""

    def __init__(self, widths: Widths, se: bool) -> None:
        super().__init__()
        stem = widths.stem
        self.conv1 = ConvUnit(3, stem, 3, stride=2)
        self.conv2_dw = ConvUnit(stem, stem, 3, groups=stem)
        (e2, c2, b2), (e3, c3, b3), (e4, c4, b4) = widths.stages
        self.conv_23 = Bottleneck(stem, e2, c2, stride=2)
        self.conv_3 = Stage(c2, b2, se)
        self.conv_34 = Bottleneck(c2, e3, c3, stride=2)
        self.conv_4 = Stage(c3, b3, se)
        self.conv_45 = Bottleneck(c3, e4, c4, stride=2)
        self.conv_5 = Stage(c4, b4, se)
        self.conv_6_sep = ConvUnit(c4, widths.head)
        self.conv_6_dw = ConvUnit(widths.head, widths.head, 5, groups=widths.head, linear=True)
        self.linear = nn.Linear(widths.head, EMBEDDING, bias=False)
        self.bn: nn.Module = nn.BatchNorm1d(EMBEDDING)
        # Upstream trains with dropout between bn and prob; at inference it is the identity.
        self.prob = nn.Linear(EMBEDDING, CLASSES, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv2_dw(self.conv1(x))
        x = self.conv_3(self.conv_23(x))
        x = self.conv_4(self.conv_34(x))
        x = self.conv_5(self.conv_45(x))
        x = self.conv_6_dw(self.conv_6_sep(x))
        return self.prob(self.bn(self.linear(torch.flatten(x, 1))))


def load(network: Network, weights_dir: Path) -> MiniFASNet:
    """The network with upstream's weights, every key used and none missing (load_state_dict strict)."""
    state = torch.load(weights_dir / network.weights, map_location="cpu", weights_only=True)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    net = MiniFASNet(network.widths, network.se)
    net.load_state_dict(state, strict=True)
    return net.eval()


def fold_batch_norms(net: MiniFASNet) -> MiniFASNet:
    """In place: every batch norm merged into the convolution or linear layer before it (exact at inference), so
    the graph holds no BatchNormalization, which TF Serving's converter takes only on 4-D input."""
    for module in net.modules():
        if isinstance(module, ConvUnit) and isinstance(module.bn, nn.BatchNorm2d):
            module.conv, module.bn = fuse_conv_bn_eval(module.conv, module.bn), nn.Identity()
        if isinstance(module, Excitation) and isinstance(module.bn1, nn.BatchNorm2d):
            module.fc1, module.bn1 = fuse_conv_bn_eval(module.fc1, module.bn1), nn.Identity()
            module.fc2, module.bn2 = fuse_conv_bn_eval(module.fc2, module.bn2), nn.Identity()
    net.linear, net.bn = fuse_linear_bn_eval(net.linear, net.bn), nn.Identity()
    return net


class Served(nn.Module):
    """What the ONNX file computes: uint8 RGB crops (N, 80, 80, 3) → softmax (N, 3). Reversing conv1's input
    channels makes it read RGB exactly as the original reads BGR; the batch norms are folded."""

    def __init__(self, net: MiniFASNet) -> None:
        super().__init__()
        self.net = fold_batch_norms(net.eval())
        with torch.no_grad():
            self.net.conv1.conv.weight.copy_(self.net.conv1.conv.weight.flip(1))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(pixels.permute(0, 3, 1, 2).float()), dim=1)


def upstream_probabilities(net: MiniFASNet, crops: np.ndarray) -> np.ndarray:
    """Upstream's way: RGB uint8 (N, 80, 80, 3) → BGR float NCHW 0–255 → softmax."""
    bgr = torch.from_numpy(np.ascontiguousarray(crops[..., ::-1].transpose(0, 3, 1, 2))).float()
    with torch.no_grad():
        return torch.softmax(net(bgr), dim=1).numpy()


# ---------------------------------------------------------------------------------------------------------------
# Export and checks


def export(network: Network, weights_dir: Path, path: Path) -> None:
    served = Served(load(network, weights_dir)).eval()
    torch.onnx.export(
        served,
        (torch.zeros(1, INPUT_SIZE, INPUT_SIZE, 3, dtype=torch.uint8),),
        str(path),
        input_names=["input"],
        output_names=["probabilities"],
        dynamic_axes={"input": {0: "batch"}, "probabilities": {0: "batch"}},
        opset_version=OPSET,
        dynamo=False,
    )
    model = onnx.load(str(path))
    model.ir_version = ONNX_IR_VERSION
    model.producer_name = "faceplane minifasnet_export.py"
    model.doc_string = (
        f"MiniFASNet {network.key} (minivision-ai/Silent-Face-Anti-Spoofing, Apache-2.0, {network.weights}): "
        f"uint8 RGB crops of the face box scaled {network.scale}x about its centre, resized to 80x80 -> softmax, "
        "class 1 = real"
    )
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def session(path: Path, threads: int = 1) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def ms_per_face(path: Path, batch: int, seconds: float = 2.0) -> float:
    s = session(path)
    x = np.random.default_rng(0).integers(0, 256, (batch, INPUT_SIZE, INPUT_SIZE, 3), dtype=np.uint8)
    s.run(None, {"input": x})
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        s.run(None, {"input": x})
        runs += 1
    return (time.perf_counter() - start) * 1000 / runs / batch


def sample_faces(samples_dir: Path) -> tuple[list[str], list[Face]]:
    """The largest face YuNet finds in each sample photo (upstream's images/sample/: F = spoof, T = real)."""
    detector = yunet(MODEL_REPO)
    names, faces = [], []
    for path in sorted(samples_dir.glob("*.jpg")):
        image = load_rgb(path)
        found = detector.detect(image)
        if not found:
            raise SystemExit(f"{path.name}: YuNet finds no face")
        names.append(path.stem)
        faces.append(Face(image, max(found, key=lambda d: d.area).box))
    return names, faces


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, default=WEIGHTS, help="upstream's .pth files and samples/")
    parser.add_argument("--out", type=Path, default=MODEL_REPO / "minifasnet")
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)

    names, faces = sample_faces(args.weights / "samples")
    record: dict[str, np.ndarray] = {
        "names": np.array(names),
        "boxes": np.stack([f.box for f in faces]).astype(np.float32),
    }
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (5, INPUT_SIZE, INPUT_SIZE, 3), dtype=np.uint8)
    for network in NETWORKS:
        path = args.out / f"{network.key}.onnx"
        export(network, args.weights, path)
        net = load(network, args.weights)  # a fresh copy: Served changed conv1 of its own
        crops = np.stack([liveness_crops(f.image, f.box, (network.scale,))[0] for f in faces])
        s = session(path)
        for what, x in (("sample crops", crops), ("random crops", noise)):
            expected = upstream_probabilities(net, x)
            got = s.run(["probabilities"], {"input": x})[0]
            diff = float(np.abs(got - expected).max())
            print(f"{path.name}: {what} ({len(x)}), max |onnx - torch| {diff:.2e}")
            assert diff < 1e-4, f"{path.name} does not reproduce PyTorch on the {what}"
        record[f"crops_{network.key}"] = crops
        record[f"probabilities_{network.key}"] = upstream_probabilities(net, crops).astype(np.float32)
        for name, p in zip(names, record[f"probabilities_{network.key}"], strict=True):
            print(f"  {name}: {np.array2string(p, precision=4)}")
        speed = ", ".join(f"batch {b}: {ms_per_face(path, b):.2f} ms/face" for b in (1, 16))
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        print(f"  ONNX Runtime 1 thread: {speed}; {path.stat().st_size:,} B, sha256 {digest}")
    np.savez_compressed(args.out / "samples.npz", **record)
    mean_real = (record["probabilities_v2"][:, 1] + record["probabilities_v1se"][:, 1]) / 2
    for name, p in zip(names, mean_real, strict=True):
        print(f"{name}: mean P(real) {p:.4f}")


if __name__ == "__main__":
    main()
