"""The dashboard: decisions per day, queue length, score drift, BIC, agreement, alerts, and
the workers: who is alive, how many tasks wait, what failed; model training is enqueued."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import Response, abort, flash, redirect, render_template, url_for
from sqlalchemy.orm import Session

from scenery.context import Context
from scenery.curation.artifacts import latest_meta
from scenery.curation.drift import RECENT, drift_report, score_drift
from scenery.curation.monitoring import agreement, daily_counts
from scenery.curation.plots import plot_bic, plot_daily, plot_scores
from scenery.errors import QueueUnavailable, SceneryError
from scenery.library import status_counts
from scenery.models import ImageStatus, TaskFailure, Worker, as_utc, isoformat, utcnow
from scenery.queue import Job
from scenery.workers import alive, last_failures
from web.admin import bp
from web.forms import ActionForm
from web.services import context, db

DAYS = 14
FAILURES = 10


@dataclass(frozen=True)
class WorkersPanel:
    """The task side of the deployment: live workers, waiting tasks, recent failures."""

    workers: list[Worker]
    failures: list[TaskFailure]
    pending: int | None  # None when the queue could not be asked
    queue_error: str | None


def workers_panel(ctx: Context, session: Session) -> WorkersPanel:
    """Gather the workers panel; an unreachable queue is reported, not raised."""
    try:
        pending, error = ctx.queue.pending(), None
    except SceneryError as exc:  # Redis down or misconfigured: the page still renders
        pending, error = None, str(exc)
    return WorkersPanel(alive(session), last_failures(session, FAILURES), pending, error)


@bp.app_template_filter("when")
def when(moment: datetime | None, now: datetime | None = None) -> str:
    """A moment relative to now for people: "in 4 min", "2.5 h ago"."""
    moment = as_utc(moment)
    if moment is None:
        return "\u2013"
    seconds = (moment - (now or utcnow())).total_seconds()
    span = abs(seconds)
    if span < 90:
        text = f"{span:.0f} s"
    elif span < 90 * 60:
        text = f"{span / 60:.0f} min"
    elif span < 48 * 3600:
        text = f"{span / 3600:.1f} h"
    else:
        text = f"{span / 86400:.0f} days"
    return f"in {text}" if seconds > 0 else f"{text} ago"


bp.add_app_template_filter(isoformat, "iso")


@bp.app_template_filter("utc")
def utc(moment: datetime | None) -> str:
    """A moment as UTC wall-clock time, to the minute."""
    moment = as_utc(moment)
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else ""


@bp.get("/")
def dashboard() -> str:
    ctx = context()
    days = daily_counts(db(), utcnow() - timedelta(days=DAYS))
    decisions = sorted({k for d in days for k in d.decisions})
    reasons = sorted({k for d in days for k in d.reasons})
    counts = status_counts(db())
    return render_template(
        "admin/dashboard.html",
        days=days,
        decisions=decisions,
        reasons=reasons,
        queue_length=counts.get(ImageStatus.QUEUED, 0),
        published=counts.get(ImageStatus.PUBLISHED, 0),
        agreement=agreement(db()),
        drift=drift_report(ctx),
        gmm=latest_meta(ctx.settings, "gmm"),
        recent_days=RECENT.days,
        panel=workers_panel(ctx, db()),
        watermark=latest_meta(ctx.settings, "watermark"),
        form=ActionForm(),
    )


@bp.post("/train/watermark")
def train_watermark() -> Any:
    """Ask a worker to train the watermark detector: training never runs in a web process."""
    try:
        context().queue.enqueue(Job.TRAIN_WATERMARK)
    except QueueUnavailable as exc:  # nothing was queued: say so on the page it came from
        flash(f"Not queued: {exc}.", "error")
    else:
        flash("Queued: a worker trains the detector.", "ok")
        if not alive(db()):
            flash("No worker is running: the task waits until one starts.", "error")
    return redirect(url_for("admin.dashboard"))


def _png(draw) -> Response:  # type: ignore[no-untyped-def]
    buffer = io.BytesIO()
    draw(buffer)
    response = Response(buffer.getvalue(), mimetype="image/png")
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.get("/charts/daily.png")
def chart_daily() -> Response:
    days = daily_counts(db(), utcnow() - timedelta(days=DAYS))
    return _png(lambda out: plot_daily(days, out))


@bp.get("/charts/scores.png")
def chart_scores() -> Response:
    drift = score_drift(context())
    if drift is None:
        abort(404)
    model = drift.model
    return _png(
        lambda out: plot_scores(
            drift.reference, drift.candidates, model.threshold, model.borderline, out
        )
    )


@bp.get("/charts/bic.png")
def chart_bic() -> Response:
    meta = latest_meta(context().settings, "gmm")
    if not meta or not meta.get("bic"):
        abort(404)
    chosen = (int(meta["components"]), str(meta["covariance"]))
    return _png(lambda out: plot_bic(meta["bic"], chosen, out))
