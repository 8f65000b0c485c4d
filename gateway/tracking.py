"""Stable ids for the faces of a video: each frame's faces are matched to the previous tracks by box overlap."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import count
from typing import Any


def iou(a: dict[str, float], b: dict[str, float]) -> float:
    """Intersection over union of two {x, y, width, height} boxes."""
    x1, y1 = max(a["x"], b["x"]), max(a["y"], b["y"])
    x2 = min(a["x"] + a["width"], b["x"] + b["width"])
    y2 = min(a["y"] + a["height"], b["y"] + b["height"])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = a["width"] * a["height"] + b["width"] * b["height"] - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Track:
    track_id: int
    box: dict[str, float]
    missed: int = 0


class Tracker:
    """Greedy IoU matching, best pairs first; a track unmatched for `max_missed` frames ends."""

    def __init__(self, min_iou: float = 0.3, max_missed: int = 10) -> None:
        self.min_iou = min_iou
        self.max_missed = max_missed
        self.tracks: list[Track] = []
        self._ids = count(1)

    def update(self, faces: list[dict[str, Any]]) -> list[int]:
        """Track ids for `faces` (each with a "box"), in their order."""
        pairs = sorted(
            ((iou(t.box, f["box"]), ti, fi) for ti, t in enumerate(self.tracks) for fi, f in enumerate(faces)),
            reverse=True,
        )
        ids: list[int | None] = [None] * len(faces)
        used: set[int] = set()
        for overlap, ti, fi in pairs:
            if overlap < self.min_iou:
                break
            if ti in used or ids[fi] is not None:
                continue
            used.add(ti)
            track = self.tracks[ti]
            track.box, track.missed, ids[fi] = faces[fi]["box"], 0, track.track_id
        for ti, track in enumerate(self.tracks):
            if ti not in used:
                track.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        for fi, face in enumerate(faces):
            if ids[fi] is None:
                track = Track(next(self._ids), face["box"])
                self.tracks.append(track)
                ids[fi] = track.track_id
        return [i for i in ids if i is not None]
