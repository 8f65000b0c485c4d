"""FER-2013 in a form small enough to travel: the 70 MB npz exceeds what a call to the GPU machine may carry.

    python -m recipes.fer_pack pack --data ../shared/datasets --pack DIR     # → DIR/fer2013_*.{png,npz}
    python -m recipes.fer_pack unpack --pack DIR --data DIR2               # → DIR2/fer2013/…trainval.npz

Lossless: the 48×48 faces stacked into one grey PNG (53 MB) and the other arrays in a small npz; unpacking writes
the npz the emotion recipe reads, byte-for-byte the same arrays (checked on unpack).
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
from PIL import Image

Image.MAX_IMAGE_PIXELS = None  # one tall image of 32,134 faces
NPZ = Path("fer2013") / "fer2013_trainval.npz"


def digest(images: np.ndarray) -> str:
    return hashlib.sha256(images.tobytes()).hexdigest()


def pack(data: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with np.load(data / NPZ) as f:
        arrays = {k: f[k] for k in f.files}
    images = arrays.pop("images")
    Image.fromarray(images.reshape(-1, images.shape[2])).save(out / "fer2013_pixels.png", optimize=True)
    np.savez_compressed(out / "fer2013_labels.npz", shape=np.array(images.shape), sha256=digest(images), **arrays)


def unpack(pack_dir: Path, data: Path) -> None:
    with np.load(pack_dir / "fer2013_labels.npz") as f:
        arrays = {k: f[k] for k in f.files}
    shape, expected = tuple(arrays.pop("shape")), str(arrays.pop("sha256"))
    images = np.asarray(Image.open(pack_dir / "fer2013_pixels.png")).reshape(shape)
    if digest(images) != expected:
        raise SystemExit("the unpacked pixels differ from the packed ones")
    (data / NPZ).parent.mkdir(parents=True, exist_ok=True)
    np.savez(data / NPZ, images=images, **arrays)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["pack", "unpack"])
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--pack", type=Path, required=True)
    args = parser.parse_args()
    pack(args.data, args.pack) if args.action == "pack" else unpack(args.pack, args.data)


if __name__ == "__main__":
    main()
