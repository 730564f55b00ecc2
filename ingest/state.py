"""What the ingest remembers between runs: posts seen, their candidates, and decisions."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from sqlalchemy import func, or_, select
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


def record_posts(session: Session, posts: Sequence[Post]) -> dict[str, PostRow]:
    """Rows for newly seen posts (pending) and the stored rows of known ones, by fullname.

    One query loads the known rows with their candidates; new rows start with an empty
    candidate list, so adding candidates asks the database nothing."""
    fullnames = [p.fullname for p in posts]
    rows = {
        row.fullname: row
        for row in session.scalars(
            select(PostRow)
            .where(PostRow.fullname.in_(fullnames))
            .options(selectinload(PostRow.candidates))
        )
    }
    for post in posts:
        if post.fullname not in rows:
            rows[post.fullname] = PostRow(
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
                candidates=[],
            )
            session.add(rows[post.fullname])
    return rows


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


def pending_candidates(
    session: Session, subreddits: Sequence[str] | None = None, limit: int | None = None
) -> list[Candidate]:
    """Undecided candidates (of posts in ``subreddits``, any case), oldest first, with their
    posts loaded. A run takes its own feeds' leftovers: a run of another feed may be working
    on the rest at the same time."""
    query = (
        select(Candidate)
        .where(Candidate.state == CandidateState.PENDING)
        .order_by(Candidate.id)
        .options(selectinload(Candidate.post))
    )
    if subreddits is not None:
        names = [name.lower() for name in subreddits]
        query = query.join(Candidate.post).where(func.lower(PostRow.subreddit).in_(names))
    if limit:
        query = query.limit(limit)
    return list(session.scalars(query))


def decided_urls(session: Session, candidates: Sequence[Candidate]) -> dict[int, Candidate]:
    """For each candidate, another one with the same URL that was decided against a stored
    image, its own or the one it duplicated (reposts, crossposts), by candidate id."""
    hashes = {c.url_hash for c in candidates}
    decided: dict[str, Candidate] = {}
    for chunk in _chunks(sorted(hashes), 500):  # SQLite's bound-parameter limit
        for row in session.scalars(
            select(Candidate)
            .where(
                Candidate.url_hash.in_(chunk),
                Candidate.state != CandidateState.PENDING,
                or_(Candidate.image_id.is_not(None), Candidate.matched_image_id.is_not(None)),
            )
            .order_by(Candidate.id)
        ):
            decided.setdefault(row.url_hash, row)
    return {
        c.id: decided[c.url_hash]
        for c in candidates
        if c.url_hash in decided and decided[c.url_hash].id != c.id
    }


def _chunks(items: Sequence[str], size: int) -> list[Sequence[str]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


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
