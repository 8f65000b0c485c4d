"""The small CNN our own classifiers share (celeba_attributes, mask_faceplane), and its ONNX export."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn


def vgg_features(in_channels: int, widths: Sequence[int]) -> nn.Sequential:
    """One block per width: two 3×3 convolutions with batch norm and ReLU, then a 2×2 max pool."""

    def block(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )  # fmt: skip

    channels = (in_channels, *widths)
    return nn.Sequential(*(block(channels[i], channels[i + 1]) for i in range(len(widths))))


class SmallCnn(nn.Module):
    """VGG-style: four blocks of two 3×3 convolutions with batch norm (`widths` channels, 16–32–64–128 unless
    given), global average pooling, dropout, a linear head. Takes raw RGB pixels NHWC (0..255, float);
    normalisation and the output activation are inside the graph, so the exported model is served as it is."""

    def __init__(
        self,
        outputs: int,
        activation: Literal["sigmoid", "softmax"],
        widths: tuple[int, int, int, int] = (16, 32, 64, 128),
    ) -> None:
        super().__init__()

        self.activation = activation
        self.features = vgg_features(3, widths)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.3), nn.Linear(widths[-1], outputs)
        )

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 3, 1, 2) / 127.5 - 1.0
        return self.head(self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.logits(x)
        return torch.sigmoid(logits) if self.activation == "sigmoid" else torch.softmax(logits, dim=1)


def default_device() -> str:
    """Where the recipes train unless told: the GPU when there is one (the issue's GPU machine), else the CPU."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def predict(model: nn.Module, x: np.ndarray) -> np.ndarray:
    """The model's outputs for `x` (NHWC pixels), in batches of 256 on the model's device."""
    model.eval()
    device = device_of(model)
    with torch.no_grad():
        probs = [model(torch.from_numpy(x[i : i + 256]).float().to(device)).cpu() for i in range(0, len(x), 256)]
    return torch.cat(probs).numpy()


def export_onnx(model: nn.Module, input_size: int, out_dir: Path) -> Path:
    """`model.onnx` with input `images` (N, size, size, 3) and output `probabilities`, dynamic batch, IR 8. The
    model is moved to the CPU to export (and stays there)."""
    import onnx

    model.cpu().eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "model.onnx"
    torch.onnx.export(
        model, (torch.zeros(1, input_size, input_size, 3),), str(path), input_names=["images"],
        output_names=["probabilities"], dynamic_axes={"images": {0: "batch"}, "probabilities": {0: "batch"}},
        opset_version=17, dynamo=False,
    )  # fmt: skip
    proto = onnx.load(str(path))
    proto.ir_version = 8  # onnxruntime 1.31 reads at most IR 13; 8 keeps older runtimes working too
    onnx.save(proto, str(path))
    return path


class TrainingRun:
    """Model, AdamW, one-cycle schedule and the data-order generator, saved after every epoch so a run resumes."""

    def __init__(self, model: nn.Module, total_steps: int, seed: int) -> None:
        torch.manual_seed(seed)
        self.model = model
        self.generator = torch.Generator().manual_seed(seed)
        self.optimiser = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
        self.schedule = torch.optim.lr_scheduler.OneCycleLR(self.optimiser, max_lr=3e-3, total_steps=total_steps)

    def resume(self, checkpoint: Path) -> int:
        """The first epoch still to run (0 without a checkpoint)."""
        if not checkpoint.exists():
            return 0
        # On the CPU: the data-order generator takes only a CPU state; load_state_dict moves the rest to the model.
        state = torch.load(checkpoint, weights_only=False, map_location="cpu")
        self.model.load_state_dict(state["model"])
        self.optimiser.load_state_dict(state["optimiser"])
        self.schedule.load_state_dict(state["schedule"])
        self.generator.set_state(state["generator"])
        return int(state["epoch"]) + 1

    def step(self, loss: torch.Tensor) -> None:
        self.optimiser.zero_grad()
        loss.backward()
        self.optimiser.step()
        self.schedule.step()

    def save(self, checkpoint: Path, epoch: int) -> None:
        state = {
            "model": self.model.state_dict(),
            "optimiser": self.optimiser.state_dict(),
            "schedule": self.schedule.state_dict(),
            "generator": self.generator.get_state(),
            "epoch": epoch,
        }
        torch.save(state, checkpoint)
