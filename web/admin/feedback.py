"""After an admin decision: the index catches up now, and the gallery model refits if due."""

from __future__ import annotations

import logging
import threading

from scenery.context import Context

log = logging.getLogger(__name__)
_refitting = threading.Lock()


def after_review(ctx: Context) -> None:
    """Make decisions visible in this process's search at once (other processes catch up from
    the publication log within their refresh interval), then check the refit rule in the
    background: approvals grow the reference set."""
    ctx.index.refresh(force=True)
    if ctx.settings.gallery_fit and _refitting.acquire(blocking=False):
        threading.Thread(target=_refit, args=(ctx,), name="refit", daemon=True).start()


def _refit(ctx: Context) -> None:
    from scenery.curation.fitting import refit_if_due

    try:
        refit_if_due(ctx)
    except Exception:
        log.exception("refitting the gallery model after a review failed")
    finally:
        _refitting.release()
