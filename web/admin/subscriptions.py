"""Subscriptions: the subreddits the gallery follows; add, edit, pause, run now, and what
their schedule, lease and last runs say."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import flash, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy.exc import IntegrityError

from scenery import schedule
from scenery.db import transaction
from scenery.models import Subscription, Worker, as_utc, utcnow
from scenery.subscriptions import (
    get_subscription,
    list_subscriptions,
    recent_runs,
    save_subscription,
)
from scenery.workers import alive
from web.admin import bp
from web.admin.dashboard import utc, when
from web.forms import ActionForm, SubscriptionForm
from web.services import BadRequest, context, db

RUNS_SHOWN = 5


@dataclass(frozen=True)
class RowState:
    """What the page says about one subscription now: its next run and who holds it."""

    next_run: str
    due: bool = False
    lease: str | None = None  # "Running now on ...", "Claimed by ..., waiting for a worker"
    running: bool = False  # a worker (or the CLI) has started the run


def row_state(row: Subscription, workers: dict[str, Worker], now: datetime) -> RowState:
    """Describe a subscription's schedule and lease for people."""
    if row.lease_token:
        after = "paused" if row.paused else "after this run"
        lease = _lease(row, workers, now)
        return RowState(after, lease=lease, running=bool(row.running_since))
    if row.paused:
        return RowState("paused")
    due_at = as_utc(row.next_run_at)
    if due_at is None:
        return RowState("not scheduled")
    if due_at <= now:
        return RowState("due now", due=True)
    return RowState(f"{when(due_at, now)} ({utc(due_at)})")


def _lease(row: Subscription, workers: dict[str, Worker], now: datetime) -> str:
    owner = row.lease_owner or "an unknown owner"
    worker = workers.get(owner)
    who = f"{worker.host}:{worker.pid}" if worker else owner
    expires = as_utc(row.lease_expires_at)
    if expires is not None and expires < now:
        then = (
            "it is paused, so it runs again when resumed or run by hand"
            if row.paused
            else "the next scheduler tick runs it again"
        )
        return f"Held by {who}, but its lease ran out {when(expires, now)}: {then}"
    if not row.running_since:  # claimed and queued: whichever worker is free takes it
        return f"Claimed by {who}, waiting for a worker"
    since = f", started {when(row.running_since, now)}"
    if worker is not None:
        return f"Running now on {who}{since}"
    if owner.startswith("cli:"):
        return f"Running now from the command line ({owner}){since}"
    return (
        f"Running on {owner}{since}, but that worker has not been seen for 5 minutes: if it is "
        f"gone, a live worker runs it again when its lease runs out ({when(expires, now)})"
    )


@bp.get("/subscriptions")
def subscriptions() -> str:
    rows = list_subscriptions(db())
    workers = {w.id: w for w in alive(db())}
    forms = {row.id: SubscriptionForm(obj=row, prefix=f"s{row.id}", formdata=None) for row in rows}
    for row in rows:
        forms[row.id].time_filter.data = row.time_filter or ""
    now = utcnow()
    return render_template(
        "admin/subscriptions.html",
        rows=rows,
        forms=forms,
        new=SubscriptionForm(prefix="new", formdata=None),
        form=ActionForm(),
        running=any(row.lease_token for row in rows),
        workers=workers,
        states={row.id: row_state(row, workers, now) for row in rows},
        runs=recent_runs(db(), [row.id for row in rows]),
    )


def _save(subscription_id: int | None, prefix: str) -> Any:
    form = SubscriptionForm(prefix=prefix, meta={"csrf": False})  # CSRFProtect checked it
    if not form.validate():
        problems = "; ".join(
            f"{form[name].label.text}: {', '.join(errs)}" for name, errs in form.errors.items()
        )
        raise BadRequest(problems)
    try:
        with transaction(context().sessions) as session:
            row = save_subscription(
                session,
                subscription_id,
                subreddit=form.subreddit.data or "",
                listing=form.listing.data or "new",
                time_filter=form.time_filter.data or None,
                post_limit=form.post_limit.data or 100,
                interval_minutes=form.interval_minutes.data or 0,  # 0 is a value: every tick
                paused=bool(form.paused.data),
            )
            name = row.subreddit
    except IntegrityError as exc:
        raise BadRequest("that subreddit already has a subscription with this listing") from exc
    flash(f"Saved r/{name}.", "ok")
    return redirect(url_for("admin.subscriptions"))


@bp.post("/subscriptions")
def add_subscription() -> Any:
    return _save(None, "new")


@bp.post("/subscriptions/<int:subscription_id>")
def edit_subscription(subscription_id: int) -> Any:
    return _save(subscription_id, f"s{subscription_id}")


@bp.post("/subscriptions/<int:subscription_id>/pause")
def toggle_pause(subscription_id: int) -> Any:
    with transaction(context().sessions) as session:
        row = get_subscription(session, subscription_id)
        row.paused = not row.paused
        state, name = ("paused" if row.paused else "resumed"), row.subreddit
    flash(f"r/{name} {state}.", "ok")
    return redirect(url_for("admin.subscriptions"))


@bp.post("/subscriptions/<int:subscription_id>/run")
def run_now(subscription_id: int) -> Any:
    """Claim the subscription and hand it to a worker; nothing runs in this process."""
    ctx = context()
    owner = f"web:{current_user.username}"
    if schedule.run_now(
        ctx.sessions, ctx.queue, subscription_id, owner, ctx.settings.lease_seconds
    ):
        flash("Queued: a worker runs it now; this page shows its summary when it ends.", "ok")
        if not alive(db()):
            flash("No worker is running: the run waits until one starts.", "error")
    else:
        flash("A run of this subscription is already under way.", "error")
    return redirect(url_for("admin.subscriptions"))
