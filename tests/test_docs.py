"""The manual stays true: generated reference equals what the code generates, every relative link resolves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from docs import generate

REPO = Path(__file__).resolve().parents[1]
MANUAL = [REPO / "README.md", REPO / "CHANGELOG.md", REPO / "DEVELOPERS.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


@pytest.mark.parametrize("path", sorted(generate.expected()), ids=lambda p: p.name)
def test_generated_reference_is_current(path: Path):
    assert path.read_text() == generate.expected()[path], f"{path.name} is stale: run `make docs`"


def test_an_undescribed_setting_stops_the_generator():
    from pydantic import Field

    from services.runtime.settings import ServiceSettings

    class Undescribed(ServiceSettings):
        knob: int = Field(3)

    with pytest.raises(ValueError, match="FACEPLANE_X_KNOB has no description"):
        generate._table("FACEPLANE_X_", generate._own_fields(Undescribed))


@pytest.mark.parametrize("path", MANUAL, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(path: Path):
    broken = []
    for target in LINK.findall(path.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        file = target.split("#", 1)[0]
        if not (path.parent / file).exists():
            broken.append(target)
    assert not broken, f"{path.name} links to missing files: {broken}"


def test_the_readme_stays_a_product_page():
    assert len((REPO / "README.md").read_text().splitlines()) <= 150


def test_every_environment_variable_read_outside_settings_is_documented():
    read = set()
    for path in REPO.glob("**/*.py"):
        if any(part in {".venv", ".cache", "tests"} for part in path.relative_to(REPO).parts):
            continue
        read |= set(re.findall(r"environ(?:\.get)?\(\s*f?\"(FACEPLANE_[A-Z_]+)", path.read_text()))
    assert read, "the scan found nothing: the pattern is broken"
    assert read <= set(generate.OTHER_VARIABLES), f"undocumented: {sorted(read - set(generate.OTHER_VARIABLES))}"
