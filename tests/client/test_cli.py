"""The `faceplane` command (as installed) and its client against the live gateway."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from PIL import Image

from faceplane_client import FaceplaneClient, FaceplaneError
from tests import images

# the CLI, websockets and raw HTTP need a gateway process listening on a port
pytestmark = pytest.mark.process


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("photos")
    out = {"astronaut": root / "astronaut.jpg", "group": root / "group.jpg", "broken": root / "broken.jpg"}
    out["astronaut"].write_bytes(images.encode(images.astronaut()))
    out["group"].write_bytes(images.encode(images.group_six()))
    out["broken"].write_bytes(b"\xff\xd8\xff not a jpeg")
    return out


def faceplane(api: httpx.Client, *args: str) -> subprocess.CompletedProcess[str]:
    command = shutil.which("faceplane", path=str(Path(sys.executable).parent))
    assert command, "the faceplane command is not installed (pip install -e .)"
    return subprocess.run([command, "--url", str(api.base_url).rstrip("/"), *args], capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def test_analyze_prints_a_table_of_faces(api: httpx.Client, photos: dict[str, Path]) -> None:
    result = faceplane(api, "analyze", str(photos["group"]))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].split()[:4] == ["#", "box", "conf", "emotion"]
    assert len(lines) == 1 + 6


def test_detect_json_is_the_api_answer(api: httpx.Client, photos: dict[str, Path]) -> None:
    result = faceplane(api, "--json", "detect", str(photos["astronaut"]))
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["faces"]) == 1


def test_verify_enroll_identify(api: httpx.Client, photos: dict[str, Path]) -> None:
    result = faceplane(api, "verify", str(photos["astronaut"]), str(photos["astronaut"]), "--require-liveness")
    assert result.returncode == 0 and result.stdout.startswith("same person"), result.stdout + result.stderr
    result = faceplane(api, "enroll", "cli-test", "eileen", str(photos["astronaut"]), "--create", "--name", "Eileen")
    assert result.returncode == 0 and "enrolled face" in result.stdout, result.stderr
    result = faceplane(api, "--json", "identify", "cli-test", str(photos["astronaut"]))
    assert json.loads(result.stdout)["faces"][0]["matches"][0]["subject_id"] == "eileen"


def test_generate_writes_pngs_that_the_seed_reproduces(api: httpx.Client, tmp_path: Path) -> None:
    result = faceplane(api, "generate", "2", "--seed", "11", "--out", str(tmp_path / "a"))
    assert result.returncode == 0, result.stderr
    again = faceplane(api, "generate", "2", "--seed", "11", "--out", str(tmp_path / "b"))
    assert again.returncode == 0
    first, second = sorted((tmp_path / "a").iterdir()), sorted((tmp_path / "b").iterdir())
    assert len(first) == 2 and [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    assert Image.open(first[0]).size[0] >= 64


def test_a_bad_image_is_a_clear_error_and_exit_code(api: httpx.Client, photos: dict[str, Path]) -> None:
    result = faceplane(api, "--json", "detect", str(photos["broken"]))
    assert result.returncode == 1
    assert json.loads(result.stderr)["error"]["code"] in {"corrupt_image", "invalid_image", "unsupported_image"}
    missing = faceplane(api, "detect", "/nonexistent/photo.jpg")
    assert missing.returncode == 2 and "No such file" in missing.stderr


def test_the_client_raises_the_api_error(api: httpx.Client) -> None:
    with FaceplaneClient(str(api.base_url).rstrip("/")) as client:
        with pytest.raises(FaceplaneError) as caught:
            client.subject("cli-test", "nobody-by-this-id")
        assert caught.value.status == 404 and caught.value.code == "not_found"
