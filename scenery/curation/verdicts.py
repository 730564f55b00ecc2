"""Verdicts of single filters and the decision they add up to."""

from __future__ import annotations

import enum
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image


class Verdict(enum.StrEnum):
    PASS = "pass"
    BORDERLINE = "borderline"
    FAIL = "fail"
    # Not run: a cheaper filter had rejected the candidate already (see ``run_cascade``).
    NOT_RUN = "not_run"


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
    # filter, or a function that makes it (ingest decodes it only for the candidates the
    # cheaper filters let through); None: it reads ``image`` instead (tiny text may be missed)
    text_view: Image.Image | Callable[[], Image.Image] | None = None


class Filter(Protocol):
    """A curation filter: looks at a candidate's facts and returns its verdict."""

    @property
    def name(self) -> str: ...

    def check(self, facts: Facts) -> FilterResult: ...


@runtime_checkable
class BatchPreparing(Protocol):
    """A filter that does its model work for a whole batch at once before ``check``."""

    def prepare(self, batch: Sequence[Facts]) -> None: ...


# The order filters run in, cheapest first, as measured per candidate by bench/curation.py
# (ViT-B-32, 2 cores): dictionary look-ups and the image's size, pHash distances to the bank,
# one index query, a GMM score (0.2 ms); then the model filters: NudeNet (~50 ms; its CLIP
# signal reuses the image vector), four quadrant embeddings (~185 ms), OCR (300-400 ms).
COST_ORDER = (
    "exact_duplicate",
    "image_rules",
    "phash_duplicate",
    "clip_duplicate",
    "gallery_fit",
    "nsfw",
    "watermark",
    "watermark_text",
)
# Filters a candidate that an earlier filter rejected does not pay for. A filter whose name is
# not in COST_ORDER runs last and counts as expensive.
EXPENSIVE = frozenset({"nsfw", "watermark", "watermark_text"})
NOT_RUN_CODE = "not_run"


def cost_rank(name: str) -> int:
    """A filter's place in the cost order; unknown filters come last."""
    return COST_ORDER.index(name) if name in COST_ORDER else len(COST_ORDER)


def is_expensive(name: str) -> bool:
    """Whether the cascade skips this filter on candidates already rejected."""
    return name in EXPENSIVE or name not in COST_ORDER


def by_cost(filters: Sequence[Filter]) -> list[Filter]:
    """The filters cheapest first (stable: equal ranks keep their order)."""
    return sorted(filters, key=lambda f: cost_rank(f.name))


def not_run(name: str, decided_by: str) -> FilterResult:
    """The record of a filter skipped because ``decided_by`` had rejected the candidate."""
    return FilterResult(
        name, Verdict.NOT_RUN, None, f"not run: decided by {decided_by}", NOT_RUN_CODE
    )


def band_margin(score: float, one: float, other: float) -> float | None:
    """Distance from ``score`` to the nearer of two thresholds, in band widths (see margin)."""
    width = abs(other - one)
    if width <= 0:
        return None
    return round(min(abs(score - one), abs(score - other)) / width, 4)


def decide(results: Sequence[FilterResult]) -> tuple[Decision, list[FilterResult]]:
    """Any fail rejects, any borderline queues, otherwise publish; return the deciding results.

    A filter that did not run counts for nothing either way."""
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


def run_cascade(
    filters: Sequence[Filter],
    facts: Facts,
    seconds: defaultdict[str, float] | None = None,
    ran: Mapping[str, FilterResult] | None = None,
) -> list[FilterResult]:
    """Every filter's result on one candidate, cheapest first; once one fails, the expensive
    filters after it are recorded as not run. ``ran`` holds results already computed (by
    ``screen``) for filters that need no running again."""
    results: list[FilterResult] = []
    failed: str | None = None
    for f in by_cost(filters):
        if failed is not None and is_expensive(f.name):
            results.append(not_run(f.name, failed))
            continue
        result = (ran or {}).get(f.name)
        if result is None:
            started = time.perf_counter()
            result = f.check(facts)
            if seconds is not None:
                seconds[f"filter {f.name}"] += time.perf_counter() - started
        results.append(result)
        if failed is None and result.verdict == Verdict.FAIL:
            failed = f.name
    return results


def rejected_by(results: Sequence[FilterResult]) -> str | None:
    """The first filter among ``results`` that failed the candidate, if any."""
    return next((r.filter for r in results if r.verdict == Verdict.FAIL), None)


def screen(
    filters: Sequence[Filter],
    batch: Sequence[Facts],
    seconds: defaultdict[str, float] | None = None,
) -> list[dict[str, FilterResult]]:
    """The expensive filters' results on a batch, cheapest first: each filter prepares and
    checks only the candidates that no filter before it failed. Each candidate's results by
    filter name, for ``run_cascade``'s ``ran``; a candidate failed early has no later ones.

    The expensive filters look at nothing but the facts, so this may run on another thread
    while the cheap, stateful ones (the duplicate checks) judge earlier batches."""
    out: list[dict[str, FilterResult]] = [{} for _ in batch]
    alive = list(range(len(batch)))
    for f in by_cost([f for f in filters if is_expensive(f.name)]):
        if not alive:
            break
        started = time.perf_counter()
        if isinstance(f, BatchPreparing):
            f.prepare([batch[i] for i in alive])
        for i in alive:
            out[i][f.name] = f.check(batch[i])
        if seconds is not None:
            seconds[f"filter {f.name}"] += time.perf_counter() - started
        alive = [i for i in alive if out[i][f.name].verdict != Verdict.FAIL]
    return out
