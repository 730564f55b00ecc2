"""The review queue's order and the margins it is ordered by."""

from __future__ import annotations

import pytest

from scenery.curation.verdicts import band_margin
from scenery.review import UNSCORED, uncertainty_margin


def test_band_margin_is_the_distance_to_the_nearer_threshold_in_band_widths() -> None:
    assert band_margin(0.5, 0.5, 0.85) == 0.0
    assert band_margin(0.675, 0.5, 0.85) == 0.5
    assert band_margin(0.8, 0.5, 0.85) == pytest.approx(0.05 / 0.35, abs=1e-4)
    assert band_margin(0.95, 0.5, 0.85) == pytest.approx(0.1 / 0.35, abs=1e-4)  # past the band
    assert band_margin(-3.0, -5.0, 1.0) == pytest.approx(2 / 6, abs=1e-4)  # log-likelihoods
    assert band_margin(1.0, 0.7, 0.7) is None  # no band


def test_a_candidate_is_as_uncertain_as_its_most_uncertain_borderline_result() -> None:
    results = [
        {"filter": "gallery_fit", "verdict": "borderline", "margin": 0.3},
        {"filter": "watermark", "verdict": "borderline", "margin": 0.1},
        {"filter": "nsfw", "verdict": "pass", "margin": 0.0},  # a pass does not queue it
        {"filter": "clip_duplicate", "verdict": "borderline", "margin": None},
    ]
    assert uncertainty_margin(results) == 0.1
    cold_start = [{"filter": "gallery_fit", "verdict": "borderline", "margin": None}]
    assert uncertainty_margin(cold_start) == UNSCORED
