"""1:N among real people: enrol each Big Bang Theory character's first photo, identify the other four.

Uses the developer face data (`../shared/datasets`, or FACEPLANE_DATA); skipped where that data is absent, as
on a machine without it. `make eval` runs the same protocol on BBT and on the 40 AT&T subjects.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import httpx
import pytest

DATA = Path(os.environ.get("FACEPLANE_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "datasets"))
BBT = DATA / "verification" / "faceapi_js_bbt"


@pytest.mark.skipif(not BBT.is_dir(), reason=f"developer face data not found at {BBT}")
def test_identify_bbt_characters(api: httpx.Client) -> None:
    c = f"bbt-{uuid.uuid4().hex[:8]}"
    people = {p.name: sorted(p.glob("*.jpg")) + sorted(p.glob("*.png")) for p in sorted(BBT.iterdir()) if p.is_dir()}
    for person, photos in people.items():
        assert api.post(f"/v1/collections/{c}/subjects", json={"subject_id": person, "name": person}).status_code == 201
        enrolled = api.post(
            f"/v1/collections/{c}/subjects/{person}/faces",
            files={"image": (photos[0].name, photos[0].read_bytes(), "image/jpeg")},
            params={"allow_multiple": "true"},
        )
        assert enrolled.status_code == 201, enrolled.text
    right = total = 0
    for person, photos in people.items():
        for photo in photos[1:]:
            reply = api.post(
                f"/v1/collections/{c}/identify", files={"image": (photo.name, photo.read_bytes(), "image/jpeg")}
            )
            faces = sorted(reply.json()["faces"], key=lambda f: -f["box"]["width"])
            total += 1
            right += bool(faces and faces[0]["matches"] and faces[0]["matches"][0]["subject_id"] == person)
    print(f"BBT top-1 at the default threshold: {right}/{total}")
    assert total >= 30 and right / total >= 0.95
