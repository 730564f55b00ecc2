"""Subreddits the gallery follows: adding, changing, pausing and removing them, and their run
history. ``scenery.schedule`` claims them; a worker's ingest job runs them."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from scenery.errors import NotFound, SceneryError
from scenery.library import is_row_id
from scenery.models import IngestRun, Subscription, as_utc, utcnow

LISTINGS = ("new", "hot", "top", "rising")
TIME_FILTERS = ("hour", "day", "week", "month", "year", "all")
SUBREDDIT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_]{1,20}")


def list_subscriptions(session: Session) -> list[Subscription]:
    return list(session.scalars(select(Subscription).order_by(Subscription.subreddit)))


def save_subscription(
    session: Session,
    subscription_id: int | None,
    *,
    subreddit: str,
    listing: str,
    time_filter: str | None,
    post_limit: int,
    interval_minutes: int,
    paused: bool,
) -> Subscription:
    """Add a subscription (``subscription_id`` None) or change one."""
    if listing not in LISTINGS:
        raise SceneryError(f"listing must be one of {', '.join(LISTINGS)}")
    if time_filter and time_filter not in TIME_FILTERS:
        raise SceneryError(f"time window must be one of {', '.join(TIME_FILTERS)}")
    name = subreddit.strip().removeprefix("/").removeprefix("r/")
    if not SUBREDDIT.fullmatch(name):
        raise SceneryError(f"{subreddit!r} is not a subreddit name (letters, digits, _)")
    if interval_minutes < 0:
        raise SceneryError("the interval is a number of minutes, 0 or more (0: every tick)")
    if not 1 <= post_limit <= 1000:
        raise SceneryError("posts per run must be between 1 and 1000")
    row = Subscription() if subscription_id is None else get_subscription(session, subscription_id)
    if subscription_id is None:
        row.next_run_at = utcnow()  # a new subscription is due at once
    elif row.interval_minutes != interval_minutes and (last := as_utc(row.last_run_at)):
        row.next_run_at = last + timedelta(minutes=interval_minutes)
    row.subreddit = name
    row.listing = listing
    row.time_filter = time_filter if listing == "top" else None
    row.post_limit = post_limit
    row.interval_minutes = interval_minutes
    row.paused = paused
    session.add(row)
    session.flush()
    return row


def get_subscription(session: Session, subscription_id: int) -> Subscription:
    row = session.get(Subscription, subscription_id) if is_row_id(subscription_id) else None
    if row is None:
        raise NotFound(f"no subscription {subscription_id}")
    return row


def set_paused(session: Session, subscription_id: int, paused: bool) -> Subscription:
    row = get_subscription(session, subscription_id)
    row.paused = paused
    return row


def remove_subscription(session: Session, subscription_id: int) -> str:
    """Stop following a feed (its runs' history stays); return its subreddit."""
    row = get_subscription(session, subscription_id)
    name = row.subreddit
    session.delete(row)
    return name


def recent_runs(
    session: Session, subscription_ids: Sequence[int], per: int = 5
) -> dict[int, list[IngestRun]]:
    """The newest ``per`` runs of each subscription, newest first."""
    if not subscription_ids:
        return {}
    number = (
        func.row_number()
        .over(partition_by=IngestRun.subscription_id, order_by=IngestRun.id.desc())
        .label("number")
    )
    ranked = (
        select(IngestRun, number).where(IngestRun.subscription_id.in_(subscription_ids)).subquery()
    )
    run = aliased(IngestRun, ranked)
    found: dict[int, list[IngestRun]] = defaultdict(list)
    for row in session.scalars(
        select(run).where(ranked.c.number <= per).order_by(run.subscription_id, run.id.desc())
    ):
        found[row.subscription_id or 0].append(row)
    return found
