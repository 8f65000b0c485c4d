"""Real photos for the tests, from packages (never from ../shared): scikit-image's astronaut (NASA, public domain)
and InsightFace 0.7.3's example group photo t1.jpg (six people), fetched once from PyPI and checked by sha256."""

from __future__ import annotations

import hashlib
import io
import tarfile
import urllib.request
from functools import cache
from pathlib import Path

import numpy as np
import skimage.data
from PIL import Image

CACHE = Path(__file__).resolve().parents[1] / ".cache" / "test-data"
INSIGHTFACE_SDIST = (
    "https://files.pythonhosted.org/packages/0b/8d/0f4af90999ca96cf8cb846eb5ae27c5ef5b390f9c090dd19e4fa76364c13/"
    "insightface-0.7.3.tar.gz"
)
INSIGHTFACE_SHA256 = "f191f719612ebb37018f41936814500544cd0f86e6fcd676c023f354c668ddf7"
# Where each face is in astronaut(): (x1, y1, x2, y2) from dlib's detector (see ../shared/FACTS.md).
ASTRONAUT_FACE = (175, 76, 265, 166)


def encode(image: np.ndarray, fmt: str = "JPEG", **params: object) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, fmt, **params)
    return out.getvalue()


def astronaut() -> np.ndarray:
    return skimage.data.astronaut()


def no_face() -> np.ndarray:
    return skimage.data.coffee()


@cache
def group_six() -> np.ndarray:
    """InsightFace's t1.jpg: six people, faces ~100-140 px high in a 1280×886 photo."""
    path = CACHE / "t1.jpg"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(INSIGHTFACE_SDIST, timeout=60) as response:
            blob = response.read()
        digest = hashlib.sha256(blob).hexdigest()
        if digest != INSIGHTFACE_SHA256:
            raise RuntimeError(f"insightface sdist sha256 {digest}, expected {INSIGHTFACE_SHA256}")
        with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
            member = tar.extractfile("insightface-0.7.3/insightface/data/images/t1.jpg")
            assert member is not None
            path.write_bytes(member.read())
    return np.asarray(Image.open(path).convert("RGB"))


def selfie() -> np.ndarray:
    """A close-up: the astronaut's face filling most of an 800×800 frame."""
    x1, y1, x2, y2 = ASTRONAUT_FACE
    crop = astronaut()[max(0, y1 - 40) : y2 + 40, max(0, x1 - 40) : x2 + 40]
    return np.asarray(Image.fromarray(crop).resize((800, 800), Image.BICUBIC))


def group_of_ten() -> tuple[np.ndarray, int]:
    """Ten small faces (~30-50 px high) on one 960×480 canvas: the six-person photo shrunk, plus four astronauts."""
    canvas = np.full((480, 960, 3), 200, dtype=np.uint8)
    six = np.asarray(Image.fromarray(group_six()).resize((520, 360), Image.LANCZOS))
    canvas[60 : 60 + 360, 0:520] = six
    small = np.asarray(Image.fromarray(astronaut()).resize((160, 160), Image.LANCZOS))
    for k, (x, y) in enumerate([(580, 40), (780, 40), (580, 260), (780, 260)]):
        canvas[y : y + 160, x : x + 160] = small if k % 2 == 0 else small[:, ::-1]
    return canvas, 10


def with_drawn_mask(image: np.ndarray, box: np.ndarray, nose: np.ndarray) -> np.ndarray:
    """A plain light-blue surgical-mask shape drawn over the face from just above the nose tip to the chin."""
    import cv2

    out = image.copy()
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    top = nose[1] - 0.05 * h
    outline = [
        [x1 + 0.05 * w, top],
        [x2 - 0.05 * w, top],
        [x2 - 0.1 * w, y2],
        [(x1 + x2) / 2, y2 + 0.05 * h],
        [x1 + 0.1 * w, y2],
    ]
    cv2.fillPoly(out, [np.array(outline, np.int32)], (170, 200, 230))
    return out
