"""Why a candidate was decided the way it was: every filter's verdict, score and reason."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from scenery.errors import NotFound
from scenery.models import Candidate, Image, Post


@dataclass(frozen=True)
class Explained:
    """One candidate's decision as stored."""

    candidate_id: int | None
    image_id: int | None
    post: str | None  # Reddit fullname
    title: str
    url: str | None
    state: str
    reason: str | None
    filters: list[dict[str, Any]]
    matched_image_id: int | None
    review: str | None


def explain(session: Session, key: str) -> list[Explained]:
    """Stored decisions for an image id, a post id (``t3_abc`` or ``abc``) or ``c<candidate>``."""
    key = key.strip()
    if key.startswith("c") and key[1:].isdigit():
        found = _candidates(session, Candidate.id == int(key[1:]))
    elif key.isdigit():
        found = _candidates(session, Candidate.image_id == int(key))
        if not found:
            return _image_only(session, int(key))
    else:
        fullname = key if key.startswith("t3_") else f"t3_{key}"
        post = session.scalars(select(Post.id).where(Post.fullname == fullname)).first()
        found = _candidates(session, Candidate.post_id == post) if post is not None else []
    if not found:
        raise NotFound(f"no candidate, image or post {key!r}")
    return found


def _candidates(session: Session, where: Any) -> list[Explained]:
    rows = session.scalars(
        select(Candidate).where(where).options(selectinload(Candidate.post)).order_by(Candidate.id)
    ).all()
    return [
        Explained(
            candidate_id=c.id,
            image_id=c.image_id,
            post=c.post.fullname,
            title=c.post.title,
            url=c.url,
            state=c.state.value,
            reason=c.reason,
            filters=list(c.filters or []),
            matched_image_id=c.matched_image_id,
            review=c.review,
        )
        for c in rows
    ]


def _image_only(session: Session, image_id: int) -> list[Explained]:
    """An image without a candidate (imported locally): what its curation record says."""
    image = session.get(Image, image_id)
    if image is None:
        raise NotFound(f"no candidate, image or post {image_id!r}")
    curation = image.curation or {}
    return [
        Explained(
            candidate_id=None,
            image_id=image.id,
            post=image.reddit_post_id,
            title=image.reddit_title or image.source_name or "",
            url=None,
            state=image.status.value,
            reason=curation.get("reason") or f"{image.source} image, not curated",
            filters=list(curation.get("filters", [])),
            matched_image_id=None,
            review=None,
        )
    ]
