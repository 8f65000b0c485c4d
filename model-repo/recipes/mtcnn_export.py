"""Export facenet-pytorch's MTCNN P/R/O-Nets (MIT) to ONNX.

Needs torch and onnx (not project dependencies: this runs once, its output is committed):
    pip install torch==2.13.0 onnx -e .   # -e .: this project, for `-m recipes.…`
    pip download --no-deps facenet-pytorch==2.6.0 && unzip facenet_pytorch-2.6.0-*.whl
    python -m recipes.mtcnn_export --weights facenet_pytorch/data --out model-repo/mtcnn

The package itself is not imported (it pulls torchvision, which breaks beside torch 2.13): the three networks are
declared here exactly as in facenet_pytorch/models/mtcnn.py and the state dicts are loaded by path.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import onnx
import torch
from torch import nn

ONNX_IR_VERSION = 8  # onnxruntime 1.31 reads at most IR 13; 8 keeps older runtimes working too
OPSET = 17


class PNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, kernel_size=3)
        self.prelu1 = nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(10, 16, kernel_size=3)
        self.prelu2 = nn.PReLU(16)
        self.conv3 = nn.Conv2d(16, 32, kernel_size=3)
        self.prelu3 = nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, kernel_size=1)
        self.softmax4_1 = nn.Softmax(dim=1)
        self.conv4_2 = nn.Conv2d(32, 4, kernel_size=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.prelu1(self.conv1(x))
        x = self.pool1(x)
        x = self.prelu2(self.conv2(x))
        x = self.prelu3(self.conv3(x))
        return self.conv4_2(x), self.softmax4_1(self.conv4_1(x))


class RNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 28, kernel_size=3)
        self.prelu1 = nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(28, 48, kernel_size=3)
        self.prelu2 = nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(48, 64, kernel_size=2)
        self.prelu3 = nn.PReLU(64)
        self.dense4 = nn.Linear(576, 128)
        self.prelu4 = nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.softmax5_1 = nn.Softmax(dim=1)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        # The weights were converted from a column-major (MATLAB/Caffe) original: flatten in W, H, C order.
        x = x.permute(0, 3, 2, 1).contiguous()
        x = self.prelu4(self.dense4(x.view(x.shape[0], -1)))
        return self.dense5_2(x), self.softmax5_1(self.dense5_1(x))


class ONet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, kernel_size=3)
        self.prelu1 = nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.prelu2 = nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(64, 64, kernel_size=3)
        self.prelu3 = nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4 = nn.Conv2d(64, 128, kernel_size=2)
        self.prelu4 = nn.PReLU(128)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.softmax6_1 = nn.Softmax(dim=1)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        x = x.permute(0, 3, 2, 1).contiguous()
        x = self.prelu5(self.dense5(x.view(x.shape[0], -1)))
        return self.dense6_2(x), self.dense6_3(x), self.softmax6_1(self.dense6_1(x))


NETS: dict[str, tuple[type[nn.Module], tuple[int, int], list[str]]] = {
    "pnet": (PNet, (12, 12), ["regression", "probability"]),
    "rnet": (RNet, (24, 24), ["regression", "probability"]),
    "onet": (ONet, (48, 48), ["regression", "landmarks", "probability"]),
}


def export(name: str, weights_dir: Path, out_dir: Path) -> Path:
    cls, (h, w), outputs = NETS[name]
    net = cls()
    net.load_state_dict(torch.load(weights_dir / f"{name}.pt", map_location="cpu", weights_only=True))
    net.eval()
    dynamic: dict[str, dict[int, str]] = {"input": {0: "batch"}}
    if name == "pnet":  # fully convolutional: any image size
        dynamic["input"].update({2: "height", 3: "width"})
        for out in outputs:
            dynamic[out] = {0: "batch", 2: "out_height", 3: "out_width"}
    else:
        for out in outputs:
            dynamic[out] = {0: "batch"}
    path = out_dir / f"{name}.onnx"
    torch.onnx.export(
        net,
        (torch.zeros(1, 3, h, w),),
        str(path),
        input_names=["input"],
        output_names=outputs,
        dynamic_axes=dynamic,
        opset_version=OPSET,
        dynamo=False,
    )
    model = onnx.load(str(path))
    model.ir_version = ONNX_IR_VERSION
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    check_against_torch(net, path, h, w)
    return path


def check_against_torch(net: nn.Module, path: Path, h: int, w: int) -> None:
    """ONNX Runtime must reproduce PyTorch on random inputs (and, for P-Net, at a size other than the export's)."""
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    sizes = [(h, w), (h * 9 + 5, w * 13 + 3)] if h == 12 else [(h, w)]
    for sh, sw in sizes:
        x = torch.rand(7, 3, sh, sw) * 2 - 1
        with torch.no_grad():
            expected = [t.numpy() for t in net(x)]
        got = session.run(None, {"input": x.numpy()})
        diff = max(float(np.abs(a - b).max()) for a, b in zip(expected, got, strict=True))
        print(f"{path.name} {sh}x{sw}: max |onnx - torch| = {diff:.2e}")
        assert diff < 1e-4, f"{path.name} does not match PyTorch ({diff})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--weights", type=Path, required=True, help="facenet_pytorch/data with pnet.pt, rnet.pt, onet.pt"
    )
    parser.add_argument("--out", type=Path, default=Path("model-repo/mtcnn"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name in NETS:
        path = export(name, args.weights, args.out)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        print(f"{path}  {path.stat().st_size / 1024:.0f} KiB  sha256 {digest}")


if __name__ == "__main__":
    main()
