"""The approval queue: most uncertain first; approve, or reject with a reason, one or many."""

from __future__ import annotations

import math
from typing import Any

from flask import flash, jsonify, render_template, request, url_for
from flask_login import current_user

from scenery.db import transaction
from scenery.review import REJECT_REASONS, approve, reject, review_queue
from web.admin import back, bp, wants_json
from web.admin.checks import checks_first
from web.admin.feedback import after_review
from web.forms import ActionForm
from web.services import BadRequest, context, db, int_arg

PER_PAGE = 48


@bp.get("/queue")
def queue() -> str:
    items = review_queue(db())
    pages = max(1, math.ceil(len(items) / PER_PAGE))
    page = min(int_arg("page", 1, 1, 100_000), pages)
    shown = items[(page - 1) * PER_PAGE : page * PER_PAGE]
    return render_template(
        "admin/queue.html",
        items=shown,
        total=len(items),
        page=page,
        pages=pages,
        reasons=REJECT_REASONS,
        form=ActionForm(),
    )


def parse_action(raw: str, selected: list[str]) -> tuple[str, str | None, list[int]]:
    """``approve:ID``, ``reject:REASON:ID``, or either with ``selected`` for the ticked ones."""
    parts = raw.split(":")
    if parts[0] == "approve" and len(parts) == 2:
        verb, reason, target = "approve", None, parts[1]
    elif parts[0] == "reject" and len(parts) == 3:
        verb, reason, target = "reject", parts[1], parts[2]
    else:
        raise BadRequest(f"unknown action {raw!r}")
    raw_ids = selected if target == "selected" else [target]
    try:
        ids = [int(i) for i in raw_ids]
    except ValueError as exc:
        raise BadRequest("image ids are integers") from exc
    if not ids:
        raise BadRequest("select at least one image")
    return verb, reason, ids


@bp.post("/decide")
def decide() -> Any:
    verb, reason, ids = parse_action(request.form.get("act", ""), request.form.getlist("ids"))
    ctx = context()
    user = current_user.username
    required: list[str] | None = None
    if verb == "approve":
        page, required = checks_first(ids, url_for("admin.decide"), {"act": "approve:selected"})
        if page is not None:  # checks it skipped ran now: the admin confirms on their verdicts
            if wants_json():
                return jsonify(error="checks ran first: confirm on the page", done=[]), 409
            return page
    with transaction(ctx.sessions) as session:
        if verb == "approve":
            done = approve(session, ids, user, required=required)
        else:
            done = reject(session, ids, reason or "", user)
        done_ids = [image.id for image in done]
    after_review(ctx)
    if wants_json():
        return jsonify(done=done_ids, verb=verb, reason=reason)
    label = "Approved" if verb == "approve" else f"Rejected ({REJECT_REASONS[reason or '']})"
    flash(f"{label}: {len(done_ids)} image{'s' if len(done_ids) != 1 else ''}.", "ok")
    return back(url_for("admin.queue"))
