"""Housekeeping a worker does on the schedule or when asked: recover expired leases (and the
download folders of dead runs), save an index snapshot, refit the gallery model when due,
drop long-rejected files, train the watermark detector, write a backup when due. Each is
idempotent."""

from __future__ import annotations

import logging
import shutil
import threading
from datetime import datetime
from pathlib import Path

from scenery.context import Context
from scenery.models import utcnow
from scenery.queue import Handler, Job
from scenery.retention import purge_rejected_files
from scenery.schedule import live_tokens, prune_runs, recover_expired

log = logging.getLogger(__name__)
LEGACY_DOWNLOAD_AGE = 3600.0  # files of runs from before per-run folders, by age

_saved_at: dict[int, int] = {}  # index watermark last saved, per context
_model_lock = threading.Lock()  # one model job at a time in a process


def recover_leases(ctx: Context, *, now: datetime | None = None) -> int:
    """Close runs whose lease expired and remove the download folders of runs not alive
    (``now``, default the real time, is for tests)."""
    lost = recover_expired(ctx.sessions, now=now)
    if lost:
        log.warning("%d ingest runs lost their lease; their subscriptions are due again", lost)
    sweep_downloads(ctx, now=now)
    return lost


def sweep_downloads(ctx: Context, *, now: datetime | None = None) -> None:
    """Remove download folders that no live run owns (killed runs leave theirs behind)."""
    for path in dead_downloads(ctx, now=now):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def dead_downloads(ctx: Context, *, now: datetime | None = None) -> list[Path]:
    """Download folders of runs that are over (or whose lease expired), and loose files of
    runs from before per-run folders that are over an hour old."""
    root = ctx.settings.downloads_dir
    if not root.is_dir():
        return []
    now = utcnow() if now is None else now
    with ctx.sessions() as session:
        live = live_tokens(session, now=now)
    dead = []
    for path in sorted(root.iterdir()):
        if (path.is_dir() and path.name not in live) or (
            path.is_file() and now.timestamp() - path.stat().st_mtime > LEGACY_DOWNLOAD_AGE
        ):
            dead.append(path)
    return dead


def save_index(ctx: Context) -> bool:
    """Catch this process's index up and save a snapshot, if anything changed since."""
    index = ctx.index
    index.refresh(force=True)
    if _saved_at.get(id(ctx)) == index.watermark:
        return False
    index.save()
    _saved_at[id(ctx)] = index.watermark
    return True


def refit(ctx: Context) -> bool:
    """Refit the gallery model if the reference set grew enough."""
    if not ctx.settings.gallery_fit:
        return False
    from scenery.curation.fitting import refit_if_due

    with _model_lock:
        return refit_if_due(ctx) is not None


def retention(ctx: Context) -> int:
    """Drop the files of long-rejected images, and the history of old runs."""
    prune_runs(ctx.sessions)
    return purge_rejected_files(ctx, ctx.settings.rejected_file_retention_days)


def backup(ctx: Context, *, now: datetime | None = None) -> Path | None:
    """Write a backup into SCENERY_BACKUP_DIR if one is due, keeping the newest few; its path."""
    from scenery.backup import backup_if_due

    report = backup_if_due(ctx, now=now)
    return report.path if report else None


def train_watermark(ctx: Context) -> None:
    from scenery.curation.gallery_training import train_gallery_watermark

    with _model_lock:
        trained = train_gallery_watermark(ctx)
    log.info(
        "watermark detector trained: precision %.3f, recall %.3f (%s)",
        trained.training.precision,
        trained.training.recall,
        trained.artifact.path,
    )


def handlers(ctx: Context) -> dict[Job, Handler]:
    """The core's jobs, bound to this process's context."""
    return {
        Job.RECOVER_LEASES: lambda: recover_leases(ctx),
        Job.SAVE_INDEX: lambda: save_index(ctx),
        Job.REFIT: lambda: refit(ctx),
        Job.RETENTION: lambda: retention(ctx),
        Job.TRAIN_WATERMARK: lambda: train_watermark(ctx),
        Job.BACKUP: lambda: backup(ctx),
    }
