"""After an admin decision: the index catches up now, and a worker refits the gallery model
if the reference set grew enough (approvals grow it)."""

from __future__ import annotations

from scenery.context import Context
from scenery.queue import Job


def after_review(ctx: Context) -> None:
    """Make decisions visible in this process's search at once (other processes catch up from
    the publication log within their refresh interval), then ask a worker to check the refit
    rule: model fitting never runs in a web process."""
    ctx.index.refresh(force=True)
    if ctx.settings.gallery_fit:
        ctx.queue.enqueue(Job.REFIT)
