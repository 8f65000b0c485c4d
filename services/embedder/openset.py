"""Open-set identification: a threshold that grows with the gallery so that strangers stay unmatched.

A stranger searched against a gallery of N faces makes N comparisons; at a per-comparison false-match rate
FMR(s) the chance that at least one reaches s is 1 − (1 − FMR(s))^N. To keep the false positive identification
rate (FPIR: the share of strangers who get any match) at a target, each comparison may false-match at most
1 − (1 − FPIR)^(1/N), and the threshold is the similarity where the calibrated FMR equals that. FMR(s) comes
from the model's `fmr_table` (model-repo/<model>/config.toml, made by model-repo/recipes/calibrate_identification.py).
Plain numpy; knows nothing of Redis or gRPC.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FmrCalibration:
    """Similarity → per-comparison FMR, interpolated linearly in log10(FMR) between the table's points. Beyond
    its ends it clamps: below the first point the FMR is the first point's (the table starts at FMR 1), above the
    last it stays at the last point's, which overestimates the FMR there (the dev pairs resolve no smaller one)."""

    similarities: np.ndarray  # rising
    log_fmr: np.ndarray  # log10, falling

    @classmethod
    def from_table(cls, table: Sequence[Sequence[float]]) -> FmrCalibration:
        points = np.asarray(table, dtype=np.float64)
        if points.ndim != 2 or points.shape[1] != 2 or len(points) < 2:
            raise ValueError("fmr_table must be at least two [similarity, fmr] pairs")
        similarity, fmr = points[:, 0], points[:, 1]
        if np.any(np.diff(similarity) <= 0) or np.any(np.diff(fmr) >= 0):
            raise ValueError("fmr_table must rise in similarity and fall in FMR")
        if fmr[0] > 1.0 or fmr[-1] <= 0.0:
            raise ValueError("fmr_table's FMRs must lie in (0, 1]")
        return cls(similarity, np.log10(fmr))

    @property
    def min_fmr(self) -> float:
        return float(10 ** self.log_fmr[-1])

    def fmr(self, similarity: float) -> float:
        return float(10 ** np.interp(similarity, self.similarities, self.log_fmr))

    def similarity_at(self, fmr: float) -> float:
        """The similarity where the FMR falls to `fmr`; the table's last similarity when `fmr` is below its
        smallest FMR (the FPIR target then is not met: more dev impostor pairs would be needed to say where)."""
        if fmr <= 0.0:
            return float(self.similarities[-1])
        # np.interp wants rising x: walk the table from its high-similarity end.
        return float(np.interp(math.log10(fmr), self.log_fmr[::-1], self.similarities[::-1]))


def per_comparison_fmr(fpir: float, faces: int) -> float:
    """1 − (1 − FPIR)^(1/N), computed without cancellation for large N."""
    return -math.expm1(math.log1p(-fpir) / max(faces, 1))


@dataclass(frozen=True)
class OpenSetDecision:
    calibration: FmrCalibration
    # Target share of strangers who get any match; 0: off, `fixed_threshold` decides whatever the gallery's size.
    fpir: float
    fixed_threshold: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.fpir < 1.0:
            raise ValueError(f"the FPIR target must lie in [0, 1), got {self.fpir}")

    def threshold(self, faces: int) -> float:
        """The similarity a match needs in a gallery of `faces` enrolled faces."""
        if self.fpir == 0.0:
            return self.fixed_threshold
        return self.calibration.similarity_at(per_comparison_fmr(self.fpir, faces))

    def clamped(self, faces: int) -> bool:
        """Whether the gallery is too large for the calibration: the threshold stopped at the table's end."""
        return per_comparison_fmr(self.fpir, faces) < self.calibration.min_fmr

    def false_match_probability(self, similarity: float, faces: int) -> float:
        """The estimated chance that a stranger scores `similarity` or more against some face of the gallery."""
        return -math.expm1(max(faces, 1) * math.log1p(-min(self.calibration.fmr(similarity), 1.0 - 1e-12)))
