"""What the ingest remembers between runs: posts seen, their candidates, and decisions."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from ingest.reddit import Post
from ingest.resolve import ImageRef
from scenery.models import Candidate, CandidateState, PostOutcome, utcnow
from scenery.models import Post as PostRow

MAX_ATTEMPTS = 3  # transient download failures before a candidate is given up


def url_hash(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()


def known_posts(session: Session, fullnames: Sequence[str]) -> dict[str, PostOutcome]:
    """Outcomes of the posts among ``fullnames`` that were seen before."""
    if not fullnames:
        return {}
    rows = session.execute(
        select(PostRow.fullname, PostRow.outcome).where(PostRow.fullname.in_(fullnames))
    )
    return {fullname: outcome for fullname, outcome in rows}


def record_post(session: Session, post: Post) -> PostRow:
    """Insert a newly seen post (pending), or return the stored row."""
    row = session.scalars(select(PostRow).where(PostRow.fullname == post.fullname)).one_or_none()
    if row is None:
        row = PostRow(
            fullname=post.fullname,
            subreddit=post.subreddit,
            title=post.title,
            author=post.author,
            permalink=post.permalink,
            url=post.url,
            created_at=post.created_at,
            score=post.score,
            flair=post.flair,
            over_18=post.over_18,
            outcome=PostOutcome.PENDING,
        )
        session.add(row)
        session.flush()
    return row


def add_candidates(session: Session, row: PostRow, refs: Sequence[ImageRef]) -> None:
    """Record the image files a post points at, once each."""
    existing = {c.key for c in row.candidates}
    for ref in refs:
        if ref.key not in existing:
            row.candidates.append(
                Candidate(
                    key=ref.key,
                    position=ref.index,
                    url=ref.url,
                    url_hash=url_hash(ref.url),
                    state=CandidateState.PENDING,
                    filters=[],
                    attempts=0,
                )
            )


def pending_candidates(session: Session, limit: int | None = None) -> list[Candidate]:
    """Undecided candidates, oldest first, with their posts loaded."""
    query = (
        select(Candidate)
        .where(Candidate.state == CandidateState.PENDING)
        .order_by(Candidate.id)
        .options(selectinload(Candidate.post))
    )
    if limit:
        query = query.limit(limit)
    return list(session.scalars(query))


def decided_url(session: Session, url: str, exclude_id: int) -> Candidate | None:
    """Another candidate with this URL that already has a decision (reposts, crossposts)."""
    return session.scalars(
        select(Candidate)
        .where(
            Candidate.url_hash == url_hash(url),
            Candidate.id != exclude_id,
            Candidate.state != CandidateState.PENDING,
        )
        .limit(1)
    ).one_or_none()


def finish_post_if_done(session: Session, row: PostRow) -> None:
    """Mark a post done once none of its candidates is pending."""
    if row.outcome == PostOutcome.PENDING and all(
        c.state != CandidateState.PENDING for c in row.candidates
    ):
        row.outcome = PostOutcome.DONE


def decide_candidate(
    candidate: Candidate,
    state: CandidateState,
    reason: str | None,
    code: str | None,
    *,
    filters: list[dict[str, object]] | None = None,
    sha256: str | None = None,
    image_id: int | None = None,
    matched_image_id: int | None = None,
) -> None:
    """Record a candidate's final state and why."""
    candidate.state = state
    candidate.reason = reason
    candidate.reason_code = code
    candidate.filters = filters or []
    candidate.sha256 = sha256 or candidate.sha256
    candidate.image_id = image_id
    candidate.matched_image_id = matched_image_id
    candidate.decided_at = utcnow()
