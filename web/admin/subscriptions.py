"""Subscriptions: the subreddits the gallery follows; add, edit, pause, run now."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy.exc import IntegrityError

from ingest.subscriptions import get_subscription, list_subscriptions, save_subscription
from scenery import schedule
from scenery.db import transaction
from scenery.workers import alive
from web.admin import bp
from web.forms import ActionForm, SubscriptionForm
from web.services import BadRequest, context, db


@bp.get("/subscriptions")
def subscriptions() -> str:
    rows = list_subscriptions(db())
    workers = {w.id: w for w in alive(db())}
    forms = {row.id: SubscriptionForm(obj=row, prefix=f"s{row.id}", formdata=None) for row in rows}
    for row in rows:
        forms[row.id].time_filter.data = row.time_filter or ""
    return render_template(
        "admin/subscriptions.html",
        rows=rows,
        forms=forms,
        new=SubscriptionForm(prefix="new", formdata=None),
        form=ActionForm(),
        running=any(row.lease_token for row in rows),
        workers=workers,
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
                interval_minutes=form.interval_minutes.data or 60,
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
    else:
        flash("A run of this subscription is already under way.", "error")
    return redirect(url_for("admin.subscriptions"))
