"""The admin's decisions: the review queue, approve and reject, unpublish, delete, retitle,
near-duplicate pairs. No web code: the admin pages and tests call these.

Every change of visibility goes through ``set_status`` (so vector indexes catch up from the
publication log), and every decision on a pipeline candidate records who made it and when.
Decisions lock the rows they read (``SELECT ... FOR UPDATE``; SQLite's write transactions are
exclusive already) and judge what they find once the lock is theirs, so two decisions on one
image, from two admins or an admin and the CLI, happen one after the other and the second sees
the first. Files go only after the commit that made them unreachable (``remove_files``).
Approvals join the reference set; labelled rejections become training negatives
(``scenery.curation.reference``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session, aliased

from scenery.errors import NotFound, SceneryError
from scenery.library import MAX_ID, set_status
from scenery.models import Candidate, CandidateState, Image, ImageStatus, as_utc, utcnow
from scenery.storage import Storage

# Reasons an admin gives for a rejection: stored code -> label shown.
REJECT_REASONS = {
    "off_topic": "off-topic",
    "low_quality": "low quality",
    "watermark": "watermark",
    "nsfw": "nsfw",
    "duplicate": "duplicate",
}
DUPLICATE_CODES = ("duplicate_phash", "duplicate_clip", "possible_duplicate")
UNSCORED = 2.0  # queue position of items no filter could place near a threshold


class ReviewError(SceneryError):
    """A decision that cannot be carried out (unknown reason, files already purged...)."""


@dataclass(frozen=True)
class QueueItem:
    image: Image
    candidate: Candidate | None
    margin: float  # distance of the nearest borderline score to a threshold (band widths)
    matched: Image | None  # the image a possible duplicate resembles
    match_result: dict[str, Any] | None  # the filter result that named it

    @property
    def results(self) -> list[dict[str, Any]]:
        return list(self.candidate.filters) if self.candidate else []


def uncertainty_margin(results: Iterable[dict[str, Any]]) -> float:
    """The smallest margin among a candidate's borderline results; UNSCORED when none has one."""
    margins = [
        float(r["margin"])
        for r in results
        if r.get("verdict") == "borderline" and r.get("margin") is not None
    ]
    return min(margins, default=UNSCORED)


def not_run(
    results: Iterable[dict[str, Any]] | None, required: Collection[str] | None = None
) -> list[str]:
    """The filters recorded as not run in a candidate's results (the ingest cascade skips the
    expensive ones once a cheaper one rejected it), among ``required`` when given."""
    return [
        str(r["filter"])
        for r in results or []
        if r.get("verdict") == "not_run" and (required is None or r.get("filter") in required)
    ]


def review_queue(session: Session) -> list[QueueItem]:
    """Queued images, most uncertain first (closest to a threshold), then oldest first."""
    rows = session.execute(
        select(Image, Candidate)
        .outerjoin(Candidate, Candidate.image_id == Image.id)
        .where(Image.status == ImageStatus.QUEUED)
        .order_by(Image.id)
    ).all()
    firsts = {image.id: (image, candidate) for image, candidate in reversed(rows)}
    results = {i: list(c.filters) if c else [] for i, (_, c) in firsts.items()}
    matches = {i: _match_result(r) for i, r in results.items()}
    matched = _images(session, [int(m["matched_image_id"]) for m in matches.values() if m])
    items = []
    for image_id, (image, candidate) in firsts.items():
        match = matches[image_id]
        other = matched.get(int(match["matched_image_id"])) if match else None
        margin = uncertainty_margin(results[image_id])
        items.append(QueueItem(image, candidate, margin, other, match))
    return sorted(items, key=lambda i: (i.margin, i.image.id))


def _match_result(results: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The duplicate filter's result that names another image, when it was not a clear pass."""
    for result in results:
        if result.get("matched_image_id") and result.get("verdict") in ("borderline", "fail"):
            return result
    return None


def _images(session: Session, ids: Sequence[int]) -> dict[int, Image]:
    if not ids:
        return {}
    return {i.id: i for i in session.scalars(select(Image).where(Image.id.in_(set(ids))))}


def _load(session: Session, image_ids: Sequence[int]) -> list[tuple[Image, Candidate | None]]:
    """The images to decide on, locked for this transaction (in id order: no deadlock between
    two bulk decisions), as they are now, not as this session may have seen them before."""
    wanted = sorted({int(i) for i in image_ids if 0 < int(i) <= MAX_ID})
    images = {
        image.id: image
        for image in session.scalars(
            select(Image)
            .where(Image.id.in_(wanted))
            .order_by(Image.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    }
    missing = set(image_ids) - set(images)
    if missing:
        raise NotFound(f"no image {min(missing)}")
    candidates = {
        c.image_id: c
        for c in session.scalars(
            select(Candidate)
            .where(Candidate.image_id.in_(list(images)))
            .execution_options(populate_existing=True)
        )
    }
    return [(images[i], candidates.get(i)) for i in dict.fromkeys(image_ids)]


def _review(
    candidate: Candidate | None, verdict: str | None, reason: str | None, user: str
) -> None:
    if candidate is None:
        return
    candidate.review = verdict
    candidate.review_reason = reason
    candidate.reviewed_by = user if verdict else None
    candidate.reviewed_at = utcnow() if verdict else None


def approve(
    session: Session,
    image_ids: Sequence[int],
    user: str,
    *,
    required: Collection[str] | None = None,
) -> list[Image]:
    """Publish images (queued, rejected or unpublished) and record the approval.

    An image whose candidate skipped checks (rejected by a cheaper filter first) is refused
    until they have run (``scenery.curation.recheck``): all of them, or those in ``required``
    (the filters the settings enable now; one turned off cannot run)."""
    done = []
    for image, candidate in _load(session, image_ids):
        if image.status == ImageStatus.DELETED:
            raise ReviewError(f"image {image.id} was deleted")
        if image.purged_at is not None:
            raise ReviewError(f"image {image.id}'s files were dropped after the retention period")
        skipped = not_run(candidate.filters if candidate else None, required)
        if skipped and image.status != ImageStatus.PUBLISHED:
            raise ReviewError(
                f"image {image.id} was never checked by {', '.join(skipped)} (a cheaper filter "
                "rejected it first): publish it from the admin pages, which run them first"
            )
        set_status(session, image, ImageStatus.PUBLISHED)
        _review(candidate, "approved", None, user)
        done.append(image)
    return done


def reject(session: Session, image_ids: Sequence[int], reason: str, user: str) -> list[Image]:
    """Hide images with a reason; the reason labels them as training negatives."""
    if reason not in REJECT_REASONS:
        raise ReviewError(f"unknown reason {reason!r}: one of {', '.join(REJECT_REASONS)}")
    done = []
    for image, candidate in _load(session, image_ids):
        if image.status == ImageStatus.DELETED:
            continue
        set_status(session, image, ImageStatus.REJECTED)
        _review(candidate, "rejected", reason, user)
        done.append(image)
    return done


def unpublish(session: Session, image_ids: Sequence[int], user: str) -> list[Image]:
    """Take published images out of the gallery and back into the queue. The decision is
    recorded (``unpublished``, by whom, when): it disagrees with publishing, in the agreement
    figures, and takes the image out of the reference set until it is approved again."""
    done = []
    for image, candidate in _load(session, image_ids):
        if image.status == ImageStatus.PUBLISHED:
            set_status(session, image, ImageStatus.QUEUED)
            _review(candidate, "unpublished", None, user)
            done.append(image)
    return done


def delete(session: Session, image_ids: Sequence[int], user: str) -> list[tuple[str, str]]:
    """Delete images: out of the gallery for good. The row (and its hash) stays, so the same
    file is recognised and not downloaded again. Returns the (sha256, extension) of each
    deleted image's files, for ``remove_files`` once the transaction has committed."""
    done = []
    for image, candidate in _load(session, image_ids):
        if image.status == ImageStatus.DELETED:
            continue
        set_status(session, image, ImageStatus.DELETED)
        image.purged_at = utcnow()
        if candidate is not None and candidate.review is None:
            _review(candidate, "rejected", None, user)
        done.append((image.sha256, image.extension))
    return done


def remove_files(storage: Storage, files: Iterable[tuple[str, str]]) -> None:
    """Remove deleted images' files (after the commit: a rolled-back delete keeps its files)."""
    for sha256, extension in files:
        storage.remove(sha256, extension)


def retitle(session: Session, image_id: int, title: str) -> Image:
    """Set the title shown in the gallery; an empty title falls back to Reddit's or the file's."""
    ((image, _),) = _load(session, [image_id])
    image.title = title.strip()[:300] or None
    return image


# -- rejected log ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Rejection:
    candidate: Candidate
    image: Image | None  # None for exact copies (no file of their own) and failed downloads
    code: str  # the admin's reason, or the deciding filter's code
    at: datetime | None


REJECTED = (Candidate.review == "rejected") | (
    Candidate.review.is_(None)
    & Candidate.state.in_([CandidateState.REJECTED, CandidateState.FAILED])
)
REJECTION_CODE = func.coalesce(Candidate.review_reason, Candidate.reason_code, "unknown")
REJECTED_AT = func.coalesce(Candidate.reviewed_at, Candidate.decided_at)


def rejected_log(
    session: Session,
    *,
    reason: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[Rejection], int]:
    """Rejected and failed candidates, newest first, optionally by reason code and date range
    (the admin's reason and time where an admin rejected it, else the pipeline's)."""
    code, at = REJECTION_CODE, REJECTED_AT
    conditions: list[ColumnElement[bool]] = [REJECTED]
    if reason:
        conditions.append(code == reason)
    if since:
        conditions.append(at >= since)
    if until:
        conditions.append(at < until)
    total = session.scalar(select(func.count()).select_from(Candidate).where(*conditions)) or 0
    image = aliased(Image)
    rows = session.execute(
        select(Candidate, image, REJECTION_CODE, REJECTED_AT)
        .outerjoin(image, image.id == Candidate.image_id)
        .where(*conditions)
        .order_by(REJECTED_AT.desc(), Candidate.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return [Rejection(c, i, code, as_utc(at)) for c, i, code, at in rows], int(total)


def rejection_codes(session: Session) -> list[str]:
    """Every reason code the rejected log can be filtered by."""
    return sorted(session.scalars(select(REJECTION_CODE).where(REJECTED).distinct()))


# -- near-duplicate pairs --------------------------------------------------------------------


@dataclass(frozen=True)
class DuplicatePair:
    candidate: Candidate
    image: Image  # the candidate's own file
    matched: Image  # the stored image it resembles
    result: dict[str, Any]  # the duplicate filter's result (score: similarity or distance)

    @property
    def candidate_is_larger(self) -> bool:
        return self.image.width * self.image.height > self.matched.width * self.matched.height


def duplicate_pairs(session: Session, *, include_reviewed: bool = False) -> list[DuplicatePair]:
    """Candidates the pipeline judged near-duplicates (or possible ones) of a stored image."""
    query = select(Candidate).where(
        Candidate.reason_code.in_(DUPLICATE_CODES),
        Candidate.image_id.is_not(None),
        Candidate.matched_image_id.is_not(None),
    )
    if not include_reviewed:
        query = query.where(Candidate.review.is_(None))
    candidates = list(session.scalars(query.order_by(Candidate.id.desc())))
    ids = [c.image_id for c in candidates] + [c.matched_image_id for c in candidates]
    images = _images(session, [i for i in ids if i is not None])
    pairs = []
    for c in candidates:
        own, other = images.get(c.image_id or 0), images.get(c.matched_image_id or 0)
        if own is None or other is None or ImageStatus.DELETED in (own.status, other.status):
            continue
        result = _match_result(c.filters) or {"filter": c.reason_code, "score": None}
        pairs.append(DuplicatePair(c, own, other, result))
    return pairs


def candidate_image(session: Session, candidate_id: int) -> int | None:
    """The image a candidate's file became, if any."""
    candidate = session.get(Candidate, candidate_id) if 0 < candidate_id <= MAX_ID else None
    return candidate.image_id if candidate is not None else None


def keep_duplicate(
    session: Session,
    candidate_id: int,
    keep: str,
    user: str,
    *,
    required: Collection[str] | None = None,
) -> None:
    """Resolve a pair: keep the candidate (publish it, hide the other) or keep the stored one.
    ``required`` as for ``approve``."""
    candidate = session.get(Candidate, candidate_id) if 0 < candidate_id <= MAX_ID else None
    if candidate is None or candidate.image_id is None or candidate.matched_image_id is None:
        raise NotFound(f"no duplicate pair for candidate {candidate_id}")
    if keep == "candidate":
        approve(session, [candidate.image_id], user, required=required)
        reject(session, [candidate.matched_image_id], "duplicate", user)
    elif keep == "stored":
        reject(session, [candidate.image_id], "duplicate", user)
    else:
        raise ReviewError("keep 'candidate' or 'stored'")
