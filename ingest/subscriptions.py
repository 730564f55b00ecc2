"""Subreddits the gallery follows, and running one of them now (the admin's "run now";
the scheduled workers will call the same ``run_subscription``)."""

from __future__ import annotations

import logging
import threading
from dataclasses import fields
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from ingest.runner import run_ingest
from ingest.summary import IngestSummary
from scenery.context import Context
from scenery.db import transaction
from scenery.errors import NotFound, SceneryError
from scenery.models import Subscription, utcnow

log = logging.getLogger(__name__)

LISTINGS = ("new", "hot", "top", "rising")
TIME_FILTERS = ("hour", "day", "week", "month", "year", "all")
STALE_RUN = timedelta(hours=6)  # a run marked running this long ago died with its process


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
    row = Subscription() if subscription_id is None else get_subscription(session, subscription_id)
    row.subreddit = subreddit.strip().removeprefix("r/")
    row.listing = listing
    row.time_filter = time_filter if listing == "top" else None
    row.post_limit = post_limit
    row.interval_minutes = interval_minutes
    row.paused = paused
    session.add(row)
    session.flush()
    return row


def get_subscription(session: Session, subscription_id: int) -> Subscription:
    row = session.get(Subscription, subscription_id)
    if row is None:
        raise NotFound(f"no subscription {subscription_id}")
    return row


def claim(ctx: Context, subscription_id: int) -> bool:
    """Mark a subscription running, unless a run of it is already under way (any process)."""
    now = utcnow()
    with transaction(ctx.sessions) as session:
        get_subscription(session, subscription_id)
        claimed = session.execute(
            update(Subscription)
            .where(
                Subscription.id == subscription_id,
                or_(
                    Subscription.running_since.is_(None),
                    Subscription.running_since < now - STALE_RUN,
                ),
            )
            .values(running_since=now)
        )
        return bool(claimed.rowcount)  # type: ignore[attr-defined]


def run_subscription(ctx: Context, subscription_id: int) -> IngestSummary | None:
    """Run one claimed subscription's ingest and store how it went; never raises for the
    run's own failures (they become the subscription's last status and error)."""
    with ctx.sessions() as session:
        sub = get_subscription(session, subscription_id)
        args = (sub.subreddit, sub.listing, sub.time_filter, sub.post_limit)
    summary: IngestSummary | None = None
    error: str | None = None
    try:
        summary = run_ingest(ctx, [args[0]], args[1], args[2], args[3])
        if summary.nothing_fetched:
            error = "; ".join(summary.errors)
    except SceneryError as exc:
        error = str(exc)
    except Exception as exc:  # a background run has nobody else to tell
        log.exception("subscription %s failed", subscription_id)
        error = f"{type(exc).__name__}: {exc}"
    with transaction(ctx.sessions) as session:
        sub = get_subscription(session, subscription_id)
        sub.running_since = None
        sub.last_run_at = utcnow()
        sub.last_status = "failed" if error else "ok"
        sub.last_error = error
        sub.last_summary = summary_json(summary) if summary else None
    return summary


def start_in_background(ctx: Context, subscription_id: int) -> bool:
    """Claim and run a subscription on a background thread; False if it is already running."""
    if not claim(ctx, subscription_id):
        return False
    thread = threading.Thread(
        target=run_subscription, args=(ctx, subscription_id), name="run-now", daemon=True
    )
    thread.start()
    return True


def summary_json(summary: IngestSummary) -> dict[str, Any]:
    """A summary as plain JSON for the database (per-stage timings left out)."""
    data: dict[str, Any] = {}
    for item in fields(summary):
        value = getattr(summary, item.name)
        # dataclasses.asdict would rebuild each Counter from (key, value) pairs: copy by hand
        data[item.name] = dict(value) if isinstance(value, dict) else value
    data.pop("seconds", None)
    data["rejected_total"] = sum(summary.rejected.values())
    data["failed_total"] = sum(summary.failed.values())
    return data
