"""Check the current filters on an owner's labelled examples.

The folder holds one sub-folder per label: ``good/``, ``offtopic/``, ``watermark/``, ``nsfw/``,
``duplicate/`` (copies of images already in the gallery). Each image goes through the duplicate
checks and the model filters as an ingested candidate would (image rules are left out: they
need no checking and would reject small examples), cheapest first. Unlike ingest, every filter
runs on every image, so that each is measured on all of them; the decisions are the ingest
cascade's all the same (a skipped filter never changes one). A filter counts as flagging an
image when its verdict is borderline or fail.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from scenery.config import GRID_THUMB
from scenery.context import Context
from scenery.curation.chain import model_filters, near_duplicate_filters
from scenery.curation.decoded_facts import decoded_facts
from scenery.curation.duplicates import ExactDuplicate, HashBank
from scenery.curation.ocr_watermark import OcrWatermarkFilter
from scenery.curation.verdicts import (
    Decision,
    Facts,
    Filter,
    FilterResult,
    Verdict,
    by_cost,
    decide,
    prepare_filters,
    run_filters,
)
from scenery.curation.watermark import DETAIL
from scenery.errors import ImageRejected, NotFound
from scenery.imaging import ImageLimits, decode, thumbnail
from scenery.importer import SUFFIXES
from scenery.library import find_by_sha

log = logging.getLogger(__name__)

LABELS = ("good", "offtopic", "watermark", "nsfw", "duplicate")
# Which label each filter is meant to catch.
CATCHES = {
    "gallery_fit": "offtopic",
    "watermark": "watermark",
    "watermark_text": "watermark",
    "nsfw": "nsfw",
    "exact_duplicate": "duplicate",
    "phash_duplicate": "duplicate",
    "clip_duplicate": "duplicate",
}
BATCH = 32


@dataclass
class Confusion:
    """Counts of one binary question: does the filter flag what it should?"""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def add(self, actual: bool, predicted: bool) -> None:
        if predicted:
            self.tp += actual
            self.fp += not actual
        else:
            self.fn += actual
            self.tn += not actual

    @property
    def precision(self) -> float | None:
        flagged = self.tp + self.fp
        return self.tp / flagged if flagged else None

    @property
    def recall(self) -> float | None:
        positives = self.tp + self.fn
        return self.tp / positives if positives else None


@dataclass
class Evaluation:
    """Per-kind and overall results on a labelled folder."""

    by_kind: dict[str, Confusion] = field(default_factory=dict)  # label -> its filters' counts
    overall: Confusion = field(default_factory=Confusion)  # bad (not good) vs not published
    decisions: dict[str, Counter[str]] = field(default_factory=dict)  # label -> decisions
    unreadable: list[tuple[Path, str]] = field(default_factory=list)
    images: int = 0


def labelled_files(root: Path) -> list[tuple[Path, str]]:
    """Image files under the known label folders, sorted."""
    if not root.is_dir():
        raise NotFound(f"{root} is not a folder")
    found = [
        (path, label)
        for label in LABELS
        if (root / label).is_dir()
        for path in sorted((root / label).rglob("*"))
        if path.is_file() and path.suffix.lower() in SUFFIXES
    ]
    if not found:
        raise NotFound(f"no images under {root}/{{{','.join(LABELS)}}}/")
    return found


def evaluate(
    ctx: Context, root: Path, on_progress: Callable[[int], None] | None = None
) -> Evaluation:
    """Run the duplicate checks and model filters on every labelled image and tally."""
    files = labelled_files(root)
    filters = _filters(ctx)
    kinds = sorted({CATCHES[f.name] for f in filters if f.name in CATCHES})
    result = Evaluation(by_kind={kind: Confusion() for kind in kinds})
    result.decisions = {label: Counter() for label in LABELS}
    # The OCR reads a larger view than the quadrant detector's: decode for it when it runs.
    text_side = next((f.max_side for f in filters if isinstance(f, OcrWatermarkFilter)), None)
    for batch in _facts_batches(ctx, files, result, text_side):
        prepare_filters(filters, [facts for facts, _ in batch])
        for facts, label in batch:
            results = run_filters(filters, facts)
            _tally(result, label, results)
        if on_progress:
            on_progress(len(batch))
    return result


def _filters(ctx: Context) -> list[Filter]:
    with ctx.sessions() as session:
        bank = HashBank.load(session)

    def stored(sha256: str) -> int | None:
        with ctx.sessions() as session:
            return find_by_sha(session, [sha256]).get(sha256)

    return by_cost(
        [ExactDuplicate(stored), *near_duplicate_filters(ctx, bank), *model_filters(ctx)]
    )


def _facts_batches(
    ctx: Context, files: list[tuple[Path, str]], result: Evaluation, text_side: int | None = None
) -> Iterator[list[tuple[Facts, str]]]:
    limits = ImageLimits.from_settings(ctx.settings)
    for start in range(0, len(files), BATCH):
        decoded = []
        for path, label in files[start : start + BATCH]:
            data = path.read_bytes()
            try:
                image = decode(data, limits, edge=max(DETAIL, text_side or 0))
            except ImageRejected as exc:
                result.unreadable.append((path, exc.reason))
                continue
            decoded.append((data, image, label))
        if not decoded:
            continue
        smalls = [thumbnail(image.image, GRID_THUMB) for _, image, _ in decoded]
        vectors = ctx.embedder.encode_images(smalls)
        batch = []
        for (data, image, label), small, vector in zip(decoded, smalls, vectors, strict=True):
            facts = decoded_facts(_sha256(data), image, small, vector, text_side or 0)
            batch.append((facts, label))
        yield batch


def _tally(result: Evaluation, label: str, results: list[FilterResult]) -> None:
    result.images += 1
    decision, _ = decide(results)
    result.decisions[label][decision.value] += 1
    result.overall.add(label != "good", decision != Decision.PUBLISH)
    for kind, confusion in result.by_kind.items():
        flagged = any(
            r.verdict in (Verdict.BORDERLINE, Verdict.FAIL)
            for r in results
            if CATCHES.get(r.filter) == kind
        )
        confusion.add(label == kind, flagged)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
