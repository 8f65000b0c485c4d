"""The open-set decision: gallery size → threshold, and the false-match probability, on the committed table."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from services.embedder.openset import FmrCalibration, OpenSetDecision, per_comparison_fmr
from services.runtime.modelrepo import read_config

MODEL = Path(__file__).resolve().parents[3] / "model-repo" / "dlib_resnet"


@pytest.fixture(scope="module")
def decision() -> OpenSetDecision:
    config = read_config(MODEL)
    calibration = FmrCalibration.from_table(config.params["fmr_table"])
    return OpenSetDecision(calibration, fpir=0.01, fixed_threshold=float(config.params["threshold"]))


def test_per_comparison_fmr_keeps_the_fpir() -> None:
    for faces in (1, 10, 1000, 10**6):
        fmr = per_comparison_fmr(0.01, faces)
        assert math.isclose(-math.expm1(faces * math.log1p(-fmr)), 0.01, rel_tol=1e-9)
    assert per_comparison_fmr(0.01, 0) == per_comparison_fmr(0.01, 1)


def test_the_threshold_rises_with_the_gallery_and_holds_the_fpir(decision: OpenSetDecision) -> None:
    sizes = [1, 10, 100, 1000, 10_000]
    thresholds = [decision.threshold(n) for n in sizes]
    assert thresholds == sorted(thresholds) and len(set(thresholds)) == len(thresholds)
    for n, t in zip(sizes, thresholds, strict=True):
        assert not decision.clamped(n)
        assert math.isclose(decision.false_match_probability(t, n), 0.01, rel_tol=1e-6)
        assert decision.false_match_probability(t + 0.005, n) < 0.01 < decision.false_match_probability(t - 0.005, n)


def test_beyond_the_table_the_threshold_stops_at_its_end(decision: OpenSetDecision) -> None:
    top = float(decision.calibration.similarities[-1])
    assert decision.clamped(10**7) and decision.threshold(10**7) == top
    assert decision.false_match_probability(1.0, 10**7) > 0.01  # the smallest FMR measured, not a smaller one


def test_a_bad_table_or_target_is_refused() -> None:
    with pytest.raises(ValueError):
        FmrCalibration.from_table([[0.9, 0.01], [0.8, 0.001]])
    with pytest.raises(ValueError):
        FmrCalibration.from_table([[0.8, 0.01]])
    with pytest.raises(ValueError):
        OpenSetDecision(FmrCalibration.from_table([[0.8, 0.1], [0.9, 0.01]]), fpir=1.0, fixed_threshold=0.9)


def test_off_the_fixed_threshold_decides_whatever_the_size(decision: OpenSetDecision) -> None:
    off = OpenSetDecision(decision.calibration, fpir=0.0, fixed_threshold=0.916)
    assert {off.threshold(n) for n in (1, 10, 10_000)} == {0.916}
    assert decision.threshold(10) > off.threshold(10)
