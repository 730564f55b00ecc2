"""The dashboard: decisions per day, queue length, score drift, BIC, agreement, alerts."""

from __future__ import annotations

import io
from datetime import timedelta

from flask import Response, abort, render_template

from scenery.curation.artifacts import latest_meta
from scenery.curation.drift import RECENT, drift_report, score_drift
from scenery.curation.monitoring import agreement, daily_counts
from scenery.curation.plots import plot_bic, plot_daily, plot_scores
from scenery.library import status_counts
from scenery.models import ImageStatus, utcnow
from web.admin import bp
from web.services import context, db

DAYS = 14


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
    )


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
