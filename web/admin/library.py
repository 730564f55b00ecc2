"""Review tools: the rejected log, published images, near-duplicate pairs."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import flash, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from scenery.db import transaction
from scenery.library import is_row_id, status_counts
from scenery.models import Image, ImageStatus
from scenery.review import (
    REJECT_REASONS,
    approve,
    candidate_image,
    delete,
    duplicate_pairs,
    keep_duplicate,
    rejected_log,
    rejection_codes,
    remove_files,
    retitle,
    unpublish,
)
from web.admin import back, bp
from web.admin.checks import checks_first
from web.admin.feedback import after_review
from web.forms import ActionForm, TitleForm
from web.services import BadRequest, context, db, int_arg

PER_PAGE = 50


def _date_arg(name: str) -> datetime | None:
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    try:
        return datetime.strptime(raw, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError as exc:
        raise BadRequest(f"{name} must be a date like 2026-11-23") from exc


def _ids() -> list[int]:
    try:
        ids = [int(i) for i in request.form.getlist("ids")]
    except ValueError as exc:
        raise BadRequest("image ids are integers") from exc
    ids = [i for i in ids if is_row_id(i)]  # no image has an id past the row range
    if not ids:
        raise BadRequest("no image given")
    return ids


@bp.get("/rejected")
def rejected() -> str:
    reason = request.args.get("reason") or None
    since, until = _date_arg("from"), _date_arg("to")
    page = int_arg("page", 1, 1, 100_000)
    rows, total = rejected_log(
        db(),
        reason=reason,
        since=since,
        until=until + timedelta(days=1) if until else None,
        limit=PER_PAGE,
        offset=(page - 1) * PER_PAGE,
    )
    return render_template(
        "admin/rejected.html",
        rows=rows,
        total=total,
        page=page,
        pages=max(1, math.ceil(total / PER_PAGE)),
        codes=rejection_codes(db()),
        reason=reason,
        since=request.args.get("from", ""),
        until=request.args.get("to", ""),
        form=ActionForm(),
    )


@bp.post("/publish")
def publish_anyway() -> Any:
    ids = _ids()
    page, required = checks_first(ids, url_for("admin.publish_anyway"))
    if page is not None:  # checks it skipped ran now: the admin confirms on their verdicts
        return page
    ctx = context()
    with transaction(ctx.sessions) as session:
        done = approve(session, ids, current_user.username, required=required)
        count = len(done)
    after_review(ctx)
    flash(f"Published {count} image{'s' if count != 1 else ''}.", "ok")
    return back(url_for("admin.rejected"))


STATUSES = {s.value: s for s in ImageStatus}


@bp.get("/images")
def images() -> str:
    status = STATUSES.get(request.args.get("status", "published"), ImageStatus.PUBLISHED)
    page = int_arg("page", 1, 1, 100_000)
    session = db()
    counts = status_counts(session)
    total = counts.get(status, 0)
    rows = session.scalars(
        select(Image)
        .where(Image.status == status)
        .order_by(Image.published_at.desc().nulls_last(), Image.id.desc())
        .limit(PER_PAGE)
        .offset((page - 1) * PER_PAGE)
    ).all()
    return render_template(
        "admin/images.html",
        images=rows,
        status=status,
        statuses=list(ImageStatus),
        counts=counts,
        total=total,
        page=page,
        pages=max(1, math.ceil(total / PER_PAGE)),
        form=ActionForm(),
    )


@bp.post("/images/change")
def change_images() -> Any:
    action = request.form.get("action", "")
    ctx = context()
    files: list[tuple[str, str]] = []
    required = None
    if action == "publish":  # before the transaction: the checks write their own
        page, required = checks_first(_ids(), url_for("admin.change_images"), {"action": action})
        if page is not None:
            return page
    with transaction(ctx.sessions) as session:
        if action == "unpublish":
            count = len(unpublish(session, _ids(), current_user.username))
            message = f"Unpublished {count}: back in the queue."
        elif action == "delete":
            files = delete(session, _ids(), current_user.username)
            message = f"Deleted {len(files)}: files removed."
        elif action == "publish":
            count = len(approve(session, _ids(), current_user.username, required=required))
            message = f"Published {count}."
        else:
            raise BadRequest(f"unknown action {action!r}")
    remove_files(ctx.storage, files)  # after the commit
    after_review(ctx)
    flash(message, "ok")
    return back(url_for("admin.images"))


@bp.post("/images/<int:image_id>/title")
def change_title(image_id: int) -> Any:
    form = TitleForm()
    if not form.validate():
        raise BadRequest("a title has at most 300 characters")
    with transaction(context().sessions) as session:
        image = retitle(session, image_id, form.title.data or "")
        shown = image.display_title
    flash(f"Title of image {image_id} is now \u201c{shown}\u201d.", "ok")
    return back(url_for("admin.images"))


@bp.get("/duplicates")
def duplicates() -> str:
    everything = request.args.get("all") == "1"
    return render_template(
        "admin/duplicates.html",
        pairs=duplicate_pairs(db(), include_reviewed=everything),
        everything=everything,
        form=ActionForm(),
        reasons=REJECT_REASONS,
    )


@bp.post("/duplicates/<int:candidate_id>")
def resolve_duplicate(candidate_id: int) -> Any:
    ctx = context()
    keep = request.form.get("keep", "")
    required: list[str] | None = None
    image_id = candidate_image(db(), candidate_id) if keep == "candidate" else None
    if image_id is not None:  # keeping the new copy publishes it: its checks first
        action = url_for("admin.resolve_duplicate", candidate_id=candidate_id)
        page, required = checks_first([image_id], action, {"keep": keep})
        if page is not None:
            return page
    with transaction(ctx.sessions) as session:
        keep_duplicate(session, candidate_id, keep, current_user.username, required=required)
    after_review(ctx)
    flash("Kept the new copy." if keep == "candidate" else "Kept the stored image.", "ok")
    return back(url_for("admin.duplicates"))
