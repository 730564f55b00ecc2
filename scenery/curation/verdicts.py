"""Verdicts of single filters and the decision they add up to."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

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


class Filter(Protocol):
    """A curation filter: looks at a candidate's facts and returns its verdict."""

    name: str

    def check(self, facts: Facts) -> FilterResult: ...


def decide(results: Sequence[FilterResult]) -> tuple[Decision, list[FilterResult]]:
    """Any fail rejects, any borderline queues, otherwise publish; return the deciding results."""
    failed = [r for r in results if r.verdict == Verdict.FAIL]
    if failed:
        return Decision.REJECT, failed
    borderline = [r for r in results if r.verdict == Verdict.BORDERLINE]
    if borderline:
        return Decision.QUEUE, borderline
    return Decision.PUBLISH, []
