"""Verdicts of single filters and the decision they add up to."""

from __future__ import annotations

import enum
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image


class Verdict(enum.StrEnum):
    PASS = "pass"
    BORDERLINE = "borderline"
    FAIL = "fail"


class Decision(enum.StrEnum):
    PUBLISH = "published"
    QUEUE = "queued"
    REJECT = "rejected"


@dataclass(frozen=True)
class FilterResult:
    """What one filter thinks of one candidate."""

    filter: str
    verdict: Verdict
    score: float | None
    reason: str
    code: str  # short and stable, for tallies: "too_small", "duplicate_phash", ...
    matched_image_id: int | None = None
    # How far the score lies from the nearer of the filter's two thresholds (queue at, fail or
    # pass at), in widths of the band between them: 0 sits on a threshold. None: no band.
    margin: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "verdict": self.verdict.value}


@dataclass
class Facts:
    """Everything a filter may look at, computed once per candidate."""

    sha256: str
    width: int
    height: int
    phash: str
    mirrored_phash: str
    vector: np.ndarray
    image: Image.Image  # grid-size RGB thumbnail
    # A 448x448 squashed view (for the watermark detector's quadrants); None: make one from image
    detail: Image.Image | None = None
    # An RGB view at the OCR's input size (long side ocr_max_side) for the text-watermark
    # filter; None: it reads ``image`` instead (smaller: tiny text may be missed)
    text_view: Image.Image | None = None


class Filter(Protocol):
    """A curation filter: looks at a candidate's facts and returns its verdict."""

    @property
    def name(self) -> str: ...

    def check(self, facts: Facts) -> FilterResult: ...


@runtime_checkable
class BatchPreparing(Protocol):
    """A filter that does its model work for a whole batch at once before ``check``."""

    def prepare(self, batch: Sequence[Facts]) -> None: ...


def band_margin(score: float, one: float, other: float) -> float | None:
    """Distance from ``score`` to the nearer of two thresholds, in band widths (see margin)."""
    width = abs(other - one)
    if width <= 0:
        return None
    return round(min(abs(score - one), abs(score - other)) / width, 4)


def decide(results: Sequence[FilterResult]) -> tuple[Decision, list[FilterResult]]:
    """Any fail rejects, any borderline queues, otherwise publish; return the deciding results."""
    failed = [r for r in results if r.verdict == Verdict.FAIL]
    if failed:
        return Decision.REJECT, failed
    borderline = [r for r in results if r.verdict == Verdict.BORDERLINE]
    if borderline:
        return Decision.QUEUE, borderline
    return Decision.PUBLISH, []


def prepare_filters(
    filters: Sequence[Filter],
    batch: Sequence[Facts],
    seconds: defaultdict[str, float] | None = None,
) -> None:
    """Let the filters that work batch-wise do their model work for the whole batch."""
    for f in filters:
        if isinstance(f, BatchPreparing):
            started = time.perf_counter()
            f.prepare(batch)
            if seconds is not None:
                seconds[f"filter {f.name}"] += time.perf_counter() - started


def run_filters(
    filters: Sequence[Filter], facts: Facts, seconds: defaultdict[str, float] | None = None
) -> list[FilterResult]:
    """Every filter's result on one candidate, timing each filter when asked."""
    results = []
    for f in filters:
        started = time.perf_counter()
        results.append(f.check(facts))
        if seconds is not None:
            seconds[f"filter {f.name}"] += time.perf_counter() - started
    return results
