"""Writing one candidate's decision: its image row, embedding and candidate state, or its
rejection as a copy of a stored file, or its failure. Each call works inside the caller's
transaction; the pipeline decides what goes into one."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from ingest.state import MAX_ATTEMPTS, decide_candidate, finish_post_if_done
from ingest.work import Failed, Job, Prepared
from scenery.config import Settings
from scenery.curation.verdicts import Decision, FilterResult
from scenery.intake import add_image
from scenery.models import Candidate, CandidateState, ImageStatus, Post
from scenery.storage import Storage

IMAGE_STATUS = {
    Decision.PUBLISH: ImageStatus.PUBLISHED,
    Decision.QUEUE: ImageStatus.QUEUED,
    Decision.REJECT: ImageStatus.REJECTED,
}
CANDIDATE_STATE = {
    Decision.PUBLISH: CandidateState.PUBLISHED,
    Decision.QUEUE: CandidateState.QUEUED,
    Decision.REJECT: CandidateState.REJECTED,
}


@dataclass
class Judged:
    """A prepared candidate with its filter results and decision, not yet stored."""

    item: Prepared
    vector: np.ndarray
    decision: Decision
    deciding: list[FilterResult]
    results: list[FilterResult]
    tags: list[tuple[str, float]] = field(default_factory=list)  # auto tags (scenery.tags)


def load_candidates(session: Session, ids: list[int]) -> list[Candidate]:
    """Load a batch's candidates with their posts and the posts' other candidates in three
    queries, so storing each decision finds them in the session instead of asking for each.

    The session holds its objects weakly: keep the returned list while storing."""
    return list(
        session.scalars(
            select(Candidate)
            .where(Candidate.id.in_(ids))
            .options(selectinload(Candidate.post).selectinload(Post.candidates))
        )
    )


def store_judged(session: Session, judged: Judged, storage: Storage, embedder: str) -> int | None:
    """Write one decision; the new image's id, or None for an exact duplicate."""
    exact = next((r for r in judged.results if r.code == "duplicate_exact"), None)
    if exact is not None:
        item = judged.item
        reject_as_copy(session, item.job, item.sha256, judged.results, exact)
        return None
    return _insert(session, judged, storage, embedder)


def reject_as_copy(
    session: Session, job: Job, sha256: str, results: list[FilterResult], exact: FilterResult
) -> None:
    """Reject a candidate as a duplicate of a stored file: no image row of its own."""
    candidate = session.get(Candidate, job.candidate_id)
    if candidate is None or candidate.state != CandidateState.PENDING:
        return  # a concurrent run decided it first
    decide_candidate(
        candidate,
        CandidateState.REJECTED,
        exact.reason,
        exact.code,
        filters=[r.as_json() for r in results],
        sha256=sha256,
        matched_image_id=exact.matched_image_id,
    )
    finish_post_if_done(session, candidate.post)


def record_failure(
    session: Session, item: Failed, settings: Settings, now: datetime
) -> bool | None:
    """Count a failed download or decode: True when the candidate failed for good, False
    when a later run will try it again, None when it was decided already.

    A passing failure (a timeout, a 5xx, a transfer cut short) waits before its next try:
    ``download_retry_seconds``, three times longer after each further failure, or longer if
    the host asked for it (Retry-After); the post stays pending meanwhile."""
    candidate = session.get(Candidate, item.job.candidate_id)
    if candidate is None or candidate.state != CandidateState.PENDING:
        return None
    candidate.attempts += 1
    if item.retryable and candidate.attempts < MAX_ATTEMPTS:
        wait = settings.download_retry_seconds * 3 ** (candidate.attempts - 1)
        wait = max(wait, item.retry_after or 0.0)
        candidate.retry_at = now + timedelta(seconds=wait)
        return False
    decide_candidate(candidate, CandidateState.FAILED, item.reason, item.code, sha256=item.sha256)
    finish_post_if_done(session, candidate.post)
    return True


def _insert(session: Session, judged: Judged, storage: Storage, embedder: str) -> int:
    item, decision, deciding = judged.item, judged.decision, judged.deciding
    job = item.job
    filters_json = [r.as_json() for r in judged.results]
    reason = "; ".join(r.reason for r in deciding) or None
    code = deciding[0].code if deciding else None
    matched = next((r.matched_image_id for r in deciding if r.matched_image_id), None)
    image = add_image(
        session,
        item.file,
        storage,
        status=IMAGE_STATUS[decision],
        model=embedder,
        vector=judged.vector,
        tags=judged.tags,
        source="reddit",
        source_name=job.url.rsplit("/", 1)[-1][:200],
        reddit_subreddit=job.subreddit,
        reddit_post_id=job.fullname,
        reddit_permalink=job.permalink,
        reddit_author=job.author,
        reddit_title=job.title,
        reddit_created_at=job.created_at,
        curation={"decision": decision.value, "reason": reason, "filters": filters_json},
    )
    candidate = session.get(Candidate, job.candidate_id)
    assert candidate is not None
    decide_candidate(
        candidate,
        CANDIDATE_STATE[decision],
        reason,
        code,
        filters=filters_json,
        sha256=item.sha256,
        image_id=image.id,
        matched_image_id=matched,
    )
    finish_post_if_done(session, candidate.post)
    return image.id
