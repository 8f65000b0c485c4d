"""Random inputs of the right names, shapes and types for any ONNX file of model-repo/ (backend parity tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort


def sample_inputs(path: Path, batch: int = 2) -> dict[str, np.ndarray]:
    """Dynamic dimensions become `batch` (the batch) or MTCNN's window sizes (P-Net 60×80, R/O-Net fixed), or for
    YuNet a 64×96 image (its sides must be multiples of 32)."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {}
    for arg in session.get_inputs():
        shape = [batch if not isinstance(d, int) else d for d in arg.shape]
        if path.parent.name == "mtcnn":
            fixed = [d if isinstance(d, int) else 48 for d in arg.shape[1:]]
            shape = [batch, 3, 60, 80] if path.stem == "pnet" else [batch, *fixed]
        if path.parent.name == "yunet":
            shape = [batch, 3, 64, 96]
        if "uint8" in arg.type:
            feeds[arg.name] = rng.integers(0, 256, shape, dtype=np.uint8)
        else:
            feeds[arg.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds
