"""The subscription schedule and its leases, kept in the database so that any number of
schedulers, workers and CLI runs on any number of machines agree.

A subscription is due when ``next_run_at`` has passed, it is not paused and no live lease is
held. Claiming it is one compare-and-set update that writes a new lease token; only a claim
that succeeded enqueues its ingest, so a stray second scheduler does no harm. The run renews
its lease while it works; a lease that expires (worker killed, machine gone) leaves the
subscription due, so whichever worker is alive redoes the work. Each claim is an
``IngestRun`` row, which is also the run's history.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, cast, delete, func, literal, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from scenery.db import transaction
from scenery.errors import NotFound, SceneryError
from scenery.library import is_row_id
from scenery.models import IngestRun, Subscription, as_utc, utcnow
from scenery.queue import Job, TaskQueue

RUN_HISTORY = timedelta(days=30)  # finished runs kept for the admin pages
LOST = "its worker stopped renewing the lease (killed, or its machine is gone); it runs again"
NEVER_STARTED = "no worker started it before its claim expired (none running?); it runs again"


class LeaseHeld(SceneryError):
    """A feed is being ingested right now by someone else."""


@dataclass(frozen=True)
class Claim:
    """A claimed run: its token (lease and download folder) and what it covers."""

    token: str
    subscription_ids: tuple[int, ...] = ()
    expires_at: datetime | None = field(default=None, compare=False)


def new_token() -> str:
    return uuid.uuid4().hex


def _free(now: datetime) -> Any:
    return or_(Subscription.lease_expires_at.is_(None), Subscription.lease_expires_at < now)


def _cas(
    session: Session,
    subscription_id: int,
    token: str,
    owner: str,
    expires: datetime,
    now: datetime,
) -> bool:
    """Write a lease on one subscription if it is free; True if this call won."""
    won = session.execute(
        update(Subscription)
        .where(Subscription.id == subscription_id, _free(now))
        .values(lease_token=token, lease_owner=owner, lease_expires_at=expires)
        .execution_options(synchronize_session=False)
    )
    if not won.rowcount:  # type: ignore[attr-defined]
        return False
    _supersede(session, [subscription_id], now)
    return True


def _supersede(session: Session, subscription_ids: list[int], now: datetime) -> None:
    """Close runs whose lease ran out before anyone noticed: their successors start now."""
    session.execute(
        update(IngestRun)
        .where(IngestRun.subscription_id.in_(subscription_ids), IngestRun.finished_at.is_(None))
        .values(status="lost", finished_at=now, error=LOST)
        .execution_options(synchronize_session=False)
    )


def _run(
    token: str,
    subscription_id: int | None,
    subreddits: str,
    owner: str,
    expires: datetime,
    now: datetime,
) -> IngestRun:
    return IngestRun(
        token=token,
        subscription_id=subscription_id,
        subreddits=subreddits,
        owner=owner,
        claimed_at=now,
        expires_at=expires,
        status="queued",
    )


def tick(
    sessions: sessionmaker[Session],
    queue: TaskQueue,
    owner: str,
    lease: float,
    *,
    now: datetime | None = None,
) -> list[Claim]:
    """Claim every due subscription and enqueue the won ones.

    The claim is one compare-and-set update over all due rows: each row that is still due and
    free when the update reaches it gets a lease token of its own (this tick's prefix and its
    id), and the rows it changed are returned. A second scheduler's update finds them leased.
    ``now`` (default: the real time) is for tests."""
    now = utcnow() if now is None else now
    expires = now + timedelta(seconds=lease)
    prefix = uuid.uuid4().hex[:20] + "-"
    with transaction(sessions) as session:
        rows = session.execute(
            update(Subscription)
            .where(Subscription.paused.is_(False), Subscription.next_run_at <= now, _free(now))
            .values(
                lease_token=literal(prefix) + cast(Subscription.id, String),
                lease_owner=owner,
                lease_expires_at=expires,
            )
            .returning(Subscription.id, Subscription.subreddit, Subscription.lease_token)
            .execution_options(synchronize_session=False)
        ).all()
        # The token column is set by this very update: never NULL here.
        won = [(sid, subreddit, str(token)) for sid, subreddit, token in rows]
        if won:
            _supersede(session, [sid for sid, _, _ in won], now)
            session.add_all(
                [_run(token, sid, subreddit, owner, expires, now) for sid, subreddit, token in won]
            )
    claims = [Claim(token, (sid,), expires) for sid, _subreddit, token in won]
    for claim in claims:  # after the commit: a worker must find the claim it is handed
        queue.enqueue(Job.INGEST, claim.subscription_ids[0], claim.token)
    return claims


def run_now(
    sessions: sessionmaker[Session],
    queue: TaskQueue,
    subscription_id: int,
    owner: str,
    lease: float,
) -> Claim | None:
    """Make a subscription due now and claim it for a worker; None if a run holds it."""
    now = utcnow()
    expires = now + timedelta(seconds=lease)
    token = new_token()
    with transaction(sessions) as session:
        sub = session.get(Subscription, subscription_id) if is_row_id(subscription_id) else None
        if sub is None:
            raise NotFound(f"no subscription {subscription_id}")
        if not _cas(session, subscription_id, token, owner, expires, now):
            return None
        # Due from now on: if this task is lost, the lease expires and the next tick runs it.
        session.execute(
            update(Subscription)
            .where(Subscription.id == subscription_id)
            .values(next_run_at=now)
            .execution_options(synchronize_session=False)
        )
        session.add(_run(token, subscription_id, sub.subreddit, owner, expires, now))
    queue.enqueue(Job.INGEST, subscription_id, token)
    return Claim(token, (subscription_id,), expires)


def claim_feeds(
    sessions: sessionmaker[Session],
    subreddits: Sequence[str],
    listing: str,
    time_filter: str | None,
    owner: str,
    lease: float,
    *,
    now: datetime | None = None,
) -> Claim:
    """Claim a command-line run: the leases of the subscriptions that follow these feeds
    (all or none), and a run row of its own either way."""
    now = utcnow() if now is None else now
    expires = now + timedelta(seconds=lease)
    token = new_token()
    names = [name.lower() for name in subreddits]
    with transaction(sessions) as session:
        subs = session.scalars(
            select(Subscription).where(
                func.lower(Subscription.subreddit).in_(names),
                Subscription.listing == listing,
                Subscription.time_filter.is_(None)
                if time_filter is None
                else Subscription.time_filter == time_filter,
            )
        ).all()
        held = []
        for sub in subs:
            if not _cas(session, sub.id, token, owner, expires, now):
                held.append(sub)
        if held:  # leaving the transaction by this error rolls back the leases won above
            who = ", ".join(f"r/{s.subreddit} ({s.lease_owner or 'a worker'})" for s in held)
            raise LeaseHeld(f"already being ingested: {who}; try again when that run ends")
        session.add(_run(token, None, ",".join(subreddits), owner, expires, now))
    return Claim(token, tuple(sub.id for sub in subs), expires)


def start(
    sessions: sessionmaker[Session],
    token: str,
    worker: str,
    lease: float,
    *,
    now: datetime | None = None,
) -> IngestRun | None:
    """Begin a claimed run; None if its claim was superseded or the run is already over."""
    now = utcnow() if now is None else now
    expires = now + timedelta(seconds=lease)
    with transaction(sessions) as session:
        run = session.scalar(select(IngestRun).where(IngestRun.token == token))
        if run is None or run.finished_at is not None:
            return None
        if run.subscription_id is not None:
            held = session.execute(
                update(Subscription)
                .where(Subscription.lease_token == token)
                .values(lease_expires_at=expires, lease_owner=worker, running_since=now)
                .execution_options(synchronize_session=False)
            )
            if not held.rowcount:  # type: ignore[attr-defined]
                run.status, run.finished_at = "superseded", now
                return None
        run.status, run.started_at, run.worker, run.expires_at = "running", now, worker, expires
        session.flush()
        session.expunge(run)
        return run


def renew(
    sessions: sessionmaker[Session], claim: Claim, lease: float, *, now: datetime | None = None
) -> bool:
    """Extend a run's lease; False if it was lost (expired and taken, or marked lost)."""
    expires = (utcnow() if now is None else now) + timedelta(seconds=lease)
    with transaction(sessions) as session:
        run = session.execute(
            update(IngestRun)
            .where(IngestRun.token == claim.token, IngestRun.finished_at.is_(None))
            .values(expires_at=expires)
            .execution_options(synchronize_session=False)
        )
        subs = session.execute(
            update(Subscription)
            .where(Subscription.lease_token == claim.token)
            .values(lease_expires_at=expires)
            .execution_options(synchronize_session=False)
        )
        return bool(run.rowcount) and subs.rowcount == len(claim.subscription_ids)  # type: ignore[attr-defined]


def finish(
    sessions: sessionmaker[Session],
    token: str,
    status: str,
    error: str | None,
    summary: dict[str, Any] | None,
    *,
    reschedule: bool = True,
    now: datetime | None = None,
) -> None:
    """End a run: record how it went and free its subscriptions' leases. ``reschedule`` False
    (a run handed back unfinished) leaves them due, so the next tick runs them again."""
    now = utcnow() if now is None else now
    with transaction(sessions) as session:
        run = session.scalar(select(IngestRun).where(IngestRun.token == token))
        if run is None:
            return
        run.status, run.error, run.summary, run.finished_at = status, error, summary, now
        for sub in session.scalars(select(Subscription).where(Subscription.lease_token == token)):
            sub.lease_token = sub.lease_owner = sub.lease_expires_at = None
            sub.running_since = None
            sub.last_run_at, sub.last_status, sub.last_error = now, status, error
            if summary is not None:
                sub.last_summary = summary
            if reschedule:
                claimed = as_utc(run.claimed_at) or now
                sub.next_run_at = claimed + timedelta(minutes=sub.interval_minutes)


def recover_expired(sessions: sessionmaker[Session], *, now: datetime | None = None) -> int:
    """Close runs and free subscriptions whose lease expired; return how many runs were lost.
    Their subscriptions keep their due time, so the next tick claims them again."""
    now = utcnow() if now is None else now
    with transaction(sessions) as session:
        expired = [IngestRun.finished_at.is_(None), IngestRun.expires_at < now]
        lost = session.execute(
            update(IngestRun)
            .where(*expired, IngestRun.started_at.is_not(None))
            .values(status="lost", finished_at=now, error=LOST)
            .execution_options(synchronize_session=False)
        )
        unstarted = session.execute(
            update(IngestRun)
            .where(*expired, IngestRun.started_at.is_(None))
            .values(status="lost", finished_at=now, error=NEVER_STARTED)
            .execution_options(synchronize_session=False)
        )
        session.execute(
            update(Subscription)
            .where(Subscription.lease_token.is_not(None), Subscription.lease_expires_at < now)
            .values(
                lease_token=None,
                lease_owner=None,
                lease_expires_at=None,
                running_since=None,
                last_status="lost",
                last_error=LOST,
            )
            .execution_options(synchronize_session=False)
        )
        return int(lost.rowcount + unstarted.rowcount)  # type: ignore[attr-defined]


def live_tokens(session: Session, *, now: datetime | None = None) -> set[str]:
    """Tokens of runs that hold a live lease (their download folders are in use)."""
    now = utcnow() if now is None else now
    return set(
        session.scalars(
            select(IngestRun.token).where(
                IngestRun.finished_at.is_(None), IngestRun.expires_at >= now
            )
        )
    )


def prune_runs(sessions: sessionmaker[Session], older_than: timedelta = RUN_HISTORY) -> int:
    """Forget finished runs older than ``older_than``; return how many."""
    with transaction(sessions) as session:
        gone = session.execute(
            delete(IngestRun).where(
                IngestRun.finished_at.is_not(None), IngestRun.finished_at < utcnow() - older_than
            )
        )
        return int(gone.rowcount)  # type: ignore[attr-defined]
