"""What the ingest remembers between runs: posts seen, their candidates, and decisions."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session, selectinload

from ingest.reddit import Post
from ingest.resolve import ImageRef, Resolution
from scenery.batches import chunked
from scenery.config import Settings
from scenery.models import Candidate, CandidateState, PostOutcome, as_utc, utcnow
from scenery.models import Post as PostRow

MAX_ATTEMPTS = 3  # transient download failures before a candidate is given up


def url_hash(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()


def settled_posts(
    session: Session, fullnames: Sequence[str], settings: Settings, now: datetime
) -> set[str]:
    """The posts among ``fullnames`` that need no resolving now: seen before (their images
    are recorded, decided or not), skipped for good, or failed and not due again yet."""
    if not fullnames:
        return set()
    rows = session.scalars(select(PostRow).where(PostRow.fullname.in_(fullnames)))
    return {row.fullname for row in rows if not retry_due(row, settings, now)}


def retry_due(row: PostRow, settings: Settings, now: datetime) -> bool:
    """Whether a failed post's resolution should be tried again now."""
    if row.outcome != PostOutcome.FAILED:
        return False
    if row.needs:
        return bool(getattr(settings, row.needs, None))
    retry_at = as_utc(row.retry_at)
    return retry_at is None or retry_at <= now


def due_failed_posts(
    session: Session, subreddits: Sequence[str], settings: Settings, now: datetime
) -> list[Post]:
    """Failed posts of these subreddits whose resolution is due again, as listing posts (the
    stored fields are all a link post's resolution needs), oldest first."""
    names = [name.lower() for name in subreddits]
    rows = session.scalars(
        select(PostRow)
        .where(PostRow.outcome == PostOutcome.FAILED, func.lower(PostRow.subreddit).in_(names))
        .order_by(PostRow.id)
    )
    return [_as_listed(row) for row in rows if retry_due(row, settings, now)]


def _as_listed(row: PostRow) -> Post:
    return Post.from_listing_child(
        {
            "kind": "t3",
            "data": {
                "id": row.fullname.removeprefix("t3_"),
                "name": row.fullname,
                "subreddit": row.subreddit,
                "title": row.title,
                "author": row.author,
                "permalink": row.permalink,
                "url": row.url,
                "created_utc": as_utc(row.created_at).timestamp(),
                "score": row.score,
                "link_flair_text": row.flair,
                "over_18": row.over_18,
            },
        }
    )


def record_resolution(
    session: Session, row: PostRow, resolution: Resolution, settings: Settings, now: datetime
) -> None:
    """Store what resolving a new or failed post gave: its candidates, a skip for good, or a
    failure to resolve again later (after a backoff, or once a missing setting is set)."""
    if resolution.images:
        row.outcome, row.reason, row.retry_at, row.needs = PostOutcome.PENDING, None, None, None
        add_candidates(session, row, resolution.images)
        return
    reason = resolution.skipped or "no image"
    if resolution.needs:
        row.outcome, row.reason, row.retry_at, row.needs = (
            PostOutcome.FAILED, reason, None, resolution.needs
        )  # fmt: skip
        return
    if resolution.retryable:
        row.resolve_attempts = (row.resolve_attempts or 0) + 1
        if row.resolve_attempts < settings.resolve_max_attempts:
            wait = settings.resolve_retry_seconds * 3 ** (row.resolve_attempts - 1)
            row.outcome, row.reason, row.needs = PostOutcome.FAILED, reason, None
            row.retry_at = now + timedelta(seconds=wait)
            return
        reason = f"{reason}; gave up after {row.resolve_attempts} runs"
    row.outcome, row.reason, row.retry_at, row.needs = PostOutcome.SKIPPED, reason, None, None


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
    session: Session,
    subreddits: Sequence[str] | None = None,
    limit: int | None = None,
    *,
    now: datetime | None = None,
) -> list[Candidate]:
    """Undecided candidates (of posts in ``subreddits``, any case) that are due, oldest first,
    with their posts loaded. A run takes its own feeds' leftovers: a run of another feed may
    be working on the rest at the same time. One whose download failed for a passing reason
    waits until its ``retry_at``."""
    query = (
        select(Candidate)
        .where(Candidate.state == CandidateState.PENDING, _due(now))
        .order_by(Candidate.id)
        .options(selectinload(Candidate.post))
    )
    if subreddits is not None:
        query = query.join(Candidate.post).where(_of_feeds(subreddits))
    if limit:
        query = query.limit(limit)
    return list(session.scalars(query))


def waiting_candidates(
    session: Session, subreddits: Sequence[str], *, now: datetime | None = None
) -> int:
    """How many undecided candidates of these feeds wait for a later retry of their download."""
    query = (
        select(func.count())
        .select_from(Candidate)
        .join(Candidate.post)
        .where(Candidate.state == CandidateState.PENDING, ~_due(now), _of_feeds(subreddits))
    )
    return int(session.scalar(query) or 0)


def _due(now: datetime | None) -> ColumnElement[bool]:
    now = utcnow() if now is None else now
    return or_(Candidate.retry_at.is_(None), Candidate.retry_at <= now)


def _of_feeds(subreddits: Sequence[str]) -> ColumnElement[bool]:
    return func.lower(PostRow.subreddit).in_([name.lower() for name in subreddits])


def decided_urls(session: Session, candidates: Sequence[Candidate]) -> dict[int, Candidate]:
    """For each candidate, another one with the same URL that was decided against a stored
    image, its own or the one it duplicated (reposts, crossposts), by candidate id."""
    hashes = {c.url_hash for c in candidates}
    decided: dict[str, Candidate] = {}
    for chunk in chunked(sorted(hashes), 500):  # SQLite's bound-parameter limit
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
    candidate.retry_at = None
