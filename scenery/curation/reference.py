"""The reference set: embeddings of images the owner trusts, and labelled negatives.

Trusted: everything imported locally (whatever its status now, unless deleted or rejected),
everything published (by the pipeline or an admin), everything an admin approved. Negatives:
rejected images, labelled by the admin's reason when there is one, else by the filter's code.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

import numpy as np
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from scenery.models import Candidate, Embedding, Image, ImageStatus

TRUSTED = or_(
    Image.status == ImageStatus.PUBLISHED,
    (Image.source == "local") & Image.status.not_in([ImageStatus.DELETED, ImageStatus.REJECTED]),
    Image.id.in_(select(Candidate.image_id).where(Candidate.review == "approved")),
)


def reference_count(session: Session, model: str) -> int:
    """How many trusted images have an embedding for this model."""
    query = (
        select(func.count())
        .select_from(Image)
        .join(Embedding)
        .where(TRUSTED, Embedding.model == model)
    )
    return int(session.scalar(query) or 0)


def reference_vectors(session: Session, model: str) -> tuple[list[int], np.ndarray]:
    """Ids and embeddings (N, dim) of the trusted images, by id."""
    rows = session.execute(
        select(Image.id, Embedding.vector)
        .join(Embedding)
        .where(TRUSTED, Embedding.model == model)
        .order_by(Image.id)
    ).all()
    return _stack(rows)


def negative_vectors(session: Session, model: str) -> dict[str, tuple[list[int], np.ndarray]]:
    """Embeddings of rejected images, grouped by label (admin reason, else filter code)."""
    rows = session.execute(
        select(
            Image.id,
            Embedding.vector,
            func.coalesce(Candidate.review_reason, Candidate.reason_code),
        )
        .join(Embedding, Embedding.image_id == Image.id)
        .join(Candidate, Candidate.image_id == Image.id)
        .where(Image.status == ImageStatus.REJECTED, Embedding.model == model)
        .order_by(Image.id)
    ).all()
    grouped: dict[str, list[tuple[int, bytes]]] = defaultdict(list)
    for image_id, vector, label in rows:
        grouped[label or "unlabelled"].append((image_id, vector))
    return {label: _stack(pairs) for label, pairs in grouped.items()}


def candidate_vectors(
    session: Session, model: str, since: datetime
) -> tuple[list[int], np.ndarray]:
    """Embeddings of the pipeline's candidates stored since a moment (any decision)."""
    rows = session.execute(
        select(Image.id, Embedding.vector)
        .join(Embedding)
        .where(Image.source == "reddit", Image.created_at >= since, Embedding.model == model)
        .order_by(Image.id)
    ).all()
    return _stack(rows)


def _stack(rows: object) -> tuple[list[int], np.ndarray]:
    pairs = list(rows)  # type: ignore[call-overload]
    if not pairs:
        return [], np.zeros((0, 0), np.float32)
    ids = [int(pair[0]) for pair in pairs]
    return ids, np.stack([np.frombuffer(pair[1], dtype=np.float32) for pair in pairs])
