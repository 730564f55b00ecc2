"""The checks a candidate skipped, run before an admin publishes it.

The ingest cascade records the expensive filters (NSFW, watermark, watermark text) as not run
on a candidate a cheaper filter rejected. Nothing reaches the gallery without them: before an
admin publishes such an image, ``run_missing_checks`` runs the ones the settings enable on its
stored file and records their verdicts with the candidate's other results, in place of the
"not run" entries; ``scenery.review.approve`` refuses an image whose required checks never ran.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from scenery.config import GRID_THUMB
from scenery.context import Context
from scenery.curation.chain import expensive_filters
from scenery.curation.decoded_facts import decoded_facts
from scenery.curation.verdicts import BatchPreparing, Facts, Filter, FilterResult, Verdict
from scenery.curation.watermark import DETAIL
from scenery.db import transaction
from scenery.imaging import ImageLimits, decode, thumbnail
from scenery.models import Candidate, Embedding, Image
from scenery.review import not_run

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rechecked:
    """The verdicts of the checks just run on one image, and what it was rejected for."""

    image_id: int
    title: str
    results: list[FilterResult]


def unchecked(
    session: Session, image_ids: Sequence[int], required: Collection[str]
) -> dict[int, list[str]]:
    """Image id -> the required filters that never ran on its candidate, for those missing any."""
    rows = session.execute(
        select(Candidate.image_id, Candidate.filters).where(Candidate.image_id.in_(list(image_ids)))
    ).all()
    found = {int(image_id): not_run(results, required) for image_id, results in rows}
    return {image_id: names for image_id, names in found.items() if names}


def required_checks(ctx: Context) -> list[str]:
    """The names of the expensive filters the settings enable now (and have models for)."""
    return [f.name for f in expensive_filters(ctx)]


def run_missing_checks(ctx: Context, image_ids: Sequence[int]) -> list[Rechecked]:
    """Run the enabled expensive filters that never ran on these images and record their
    verdicts on the candidates; the new verdicts, per image that was missing any.

    Reads in one session, runs the models outside any transaction, writes in a short one."""
    filters = expensive_filters(ctx)
    with ctx.sessions() as session:
        todo = unchecked(session, image_ids, [f.name for f in filters])
        loaded = _load(session, list(todo), ctx.embedder.name)
    done = []
    for image_id, names in sorted(todo.items()):
        if image_id not in loaded:
            continue
        wanted = [f for f in filters if f.name in names]
        title, facts = _facts(ctx, *loaded[image_id], _text_side(wanted))
        results = _run(wanted, facts)
        done.append(Rechecked(image_id, title, results))
    with transaction(ctx.sessions) as session:
        for item in done:
            _record(session, item)
    return done


Loaded = tuple[Image, np.ndarray | None]


def _load(session: Session, image_ids: list[int], model: str) -> dict[int, Loaded]:
    images = session.scalars(select(Image).where(Image.id.in_(image_ids))).all()
    vectors = {
        e.image_id: np.frombuffer(e.vector, dtype=np.float32)
        for e in session.scalars(
            select(Embedding).where(Embedding.image_id.in_(image_ids), Embedding.model == model)
        )
    }
    for image in images:
        session.expunge(image)
    return {i.id: (i, vectors.get(i.id)) for i in images if i.purged_at is None}


def _text_side(filters: Sequence[Filter]) -> int:
    """The long side of the view an OCR filter among these reads; 0 when none reads one."""
    return max((int(getattr(f, "max_side", 0)) for f in filters), default=0)


def _facts(
    ctx: Context, image: Image, vector: np.ndarray | None, text_side: int
) -> tuple[str, Facts]:
    """The facts the pipeline would have had, made again from the stored original."""
    data = ctx.storage.original_path(image.sha256, image.extension).read_bytes()
    edge = max(DETAIL, text_side)
    decoded = decode(data, ImageLimits.from_settings(ctx.settings), edge=edge)
    small = thumbnail(decoded.image, GRID_THUMB)
    if vector is None:
        vector = ctx.embedder.encode_images([small])[0]
    facts = decoded_facts(image.sha256, decoded, small, vector, text_side)
    return image.display_title, facts


def _run(filters: Sequence[Filter], facts: Facts) -> list[FilterResult]:
    results = []
    for f in filters:
        if isinstance(f, BatchPreparing):
            f.prepare([facts])
        results.append(f.check(facts))
    return results


def _record(session: Session, item: Rechecked) -> None:
    """Put the new verdicts in place of the "not run" entries, on the candidate and the image."""
    new = {r.filter: r.as_json() for r in item.results}

    def merged(results: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
        return [
            new.get(r["filter"], r) if r.get("verdict") == Verdict.NOT_RUN.value else r
            for r in results or []
        ]

    for candidate in session.scalars(
        select(Candidate).where(Candidate.image_id == item.image_id).with_for_update()
    ):
        candidate.filters = merged(candidate.filters)
    image = session.get(Image, item.image_id)
    if image is not None and image.curation:
        image.curation = {**image.curation, "filters": merged(image.curation.get("filters"))}
    log.info("ran %s on image %d before publishing", ", ".join(new), item.image_id)
