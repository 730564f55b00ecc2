"""Checks before publishing: a candidate the ingest rejected before its expensive filters ran
(NSFW, watermark, watermark text) gets them run first, and the admin sees their verdicts and
confirms before it is published. Nothing reaches the gallery without them, unless the settings
turn them off."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from flask import render_template, request
from sqlalchemy import select

from scenery.curation.recheck import required_checks, run_missing_checks, unchecked
from scenery.models import Image
from web.forms import ActionForm
from web.services import context, db


def checks_first(
    ids: Sequence[int], action: str, fields: Mapping[str, str] | None = None
) -> tuple[str | None, list[str]]:
    """Run the checks these images skipped, if any: the page showing their verdicts, which
    posts ``fields`` and the ids to ``action`` again to confirm (then nothing is missing), or
    None when every check has run; and the checks the settings require, for ``approve``."""
    required = required_checks(context())
    if not unchecked(db(), ids, required):
        return None, required
    checked = run_missing_checks(context(), ids)
    shown = [item.image_id for item in checked]
    images = {i.id: i for i in db().scalars(select(Image).where(Image.id.in_(shown)))}
    page = render_template(
        "admin/checks.html",
        checked=checked,
        images=images,
        ids=list(ids),
        action=action,
        fields=dict(fields or {}),
        back=request.form.get("back", ""),
        form=ActionForm(),
    )
    return page, required
