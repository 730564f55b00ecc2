"""Writing backups while the gallery runs, and the periodic backup with its retention.

The database snapshot comes first (``scenery.backup_db``); then the files its image rows name
are copied, hashed as they are read. Rows committed after the snapshot are not in it, so their
files do not matter; a file that a delete or retention removed after the snapshot is recorded
as vanished, with the row's new state, which the restore applies. The vector index is left out:
it is a cache of the database, and a live snapshot of it may already hold publications newer
than the database snapshot, which no catch-up would undo; the restore rebuilds it.

Unchanged originals are hard-linked from the newest earlier backup in the same folder (when it
is on the same file system): originals never change (their name is their hash), so a week of
daily backups takes little more room than one. Every backup is still whole on its own.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from scenery import __version__
from scenery.backup_db import KeptImage, snapshot_database
from scenery.backup_manifest import (
    FILES,
    BackupError,
    FileEntry,
    Manifest,
    Stopwatch,
    backup_name,
    complete_backups,
    copy_hashed,
    partial_backups,
)
from scenery.config import GRID_THUMB
from scenery.context import Context
from scenery.errors import NotFound
from scenery.models import Image, as_utc, utcnow
from scenery.storage import Storage

log = logging.getLogger(__name__)

CLIP_CACHE = "open_clip"  # under models/: downloaded weights, fetched again on first use
HEARTBEAT_SECONDS = 60.0  # a backup under way touches its folder this often
# A partial backup untouched this long was left by a killed process: deleted, and no obstacle
# to the next one. (File times come from the file system's clock: machines that share the
# backup folder must agree on the time within minutes, as NTP keeps them.)
ABANDONED_AFTER = timedelta(minutes=10)
Progress = Callable[[int, int], None]


@dataclass
class BackupReport:
    path: Path
    images: dict[str, int]
    files: int = 0
    bytes: int = 0
    linked: int = 0  # originals hard-linked from the previous backup
    vanished: list[int] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # per stage


def write_backup(
    ctx: Context, dest: Path, *, now: datetime | None = None, on_progress: Progress | None = None
) -> BackupReport:
    """Write a backup of the gallery into ``dest/scenery-<time>``; return what it holds."""
    clock = Stopwatch()
    now = utcnow() if now is None else now
    dest = dest.expanduser().resolve()
    dest.mkdir(parents=True, exist_ok=True)
    final = dest / backup_name(now)
    if final.exists():
        raise BackupError(f"{final} exists already")
    staging = dest / f".{final.name}.{uuid.uuid4().hex[:8]}.partial"
    staging.mkdir(mode=0o700)  # it holds password hashes and the secret key
    try:
        with _heartbeat(staging):
            report = _write(ctx, staging, final, now, clock, on_progress)
        staging.rename(final)
        clock.lap("sync")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    report.seconds = clock.seconds
    log.info("backup %s: %d files, %d bytes", final, report.files, report.bytes)
    return report


def _write(
    ctx: Context,
    staging: Path,
    final: Path,
    now: datetime,
    clock: Stopwatch,
    on_progress: Progress | None,
) -> BackupReport:
    """The backup's contents into ``staging``: database, files, manifest, all on disk."""
    snapshot = snapshot_database(ctx.engine, staging)
    clock.lap("database")
    copier = _Copier(ctx.storage, staging / FILES, _previous(final.parent))
    gone = copier.images(snapshot.kept, on_progress)
    copier.tree(ctx.settings.models_dir, skip_top={CLIP_CACHE})
    with contextlib.suppress(NotFound):  # none when SCENERY_SECRET_KEY is set
        copier.file("secret_key")
    clock.lap("files")
    manifest = Manifest(now, __version__, snapshot.dump, snapshot.images, copier.entries)
    report = BackupReport(final, snapshot.images, len(copier.entries), copier.bytes)
    report.linked = copier.linked
    _sort_gone(ctx, gone, manifest, report)
    manifest.write(staging)
    os.sync()  # everything on disk before the name says the backup is whole
    return report


@contextlib.contextmanager
def _heartbeat(folder: Path) -> Iterator[None]:
    """Touch ``folder`` every ``HEARTBEAT_SECONDS`` while the block runs, so that others can
    tell a backup under way from one a killed process left."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_SECONDS):
            with contextlib.suppress(OSError):
                os.utime(folder)

    thread = threading.Thread(target=beat, name="backup-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


class _Copier:
    """Copies files of the data dir into a backup, hashing them, or links unchanged originals
    from the previous backup."""

    def __init__(
        self, storage: Storage, target: Path, previous: tuple[Path, Manifest] | None
    ) -> None:
        self.storage = storage
        self.root = storage.root
        self.target = target
        self.previous_root = previous[0] / FILES if previous else None
        self.previous = {e.path: e for e in previous[1].files} if previous else {}
        self.entries: list[FileEntry] = []
        self.bytes = 0
        self.linked = 0

    def images(self, kept: list[KeptImage], on_progress: Progress | None) -> list[KeptImage]:
        """Copy each image's original and grid thumbnail; return those whose original is gone."""
        gone = []
        for done, image in enumerate(kept, 1):
            if self._original(image):
                with contextlib.suppress(NotFound):  # a missing one is rendered on request
                    thumb = self.storage.thumb_path(image.sha256, GRID_THUMB)
                    self.file(thumb.relative_to(self.root).as_posix())
            else:
                gone.append(image)
            if on_progress:
                on_progress(done, len(kept))
        return gone

    def _original(self, image: KeptImage) -> bool:
        earlier = self.previous.get(image.path)
        if earlier is not None and self.previous_root and earlier.sha256 == image.sha256:
            # Content-addressed: the earlier copy of this name is this content.
            try:
                os.link(self.previous_root / image.path, self._place(image.path))
            except OSError:
                pass  # another file system, or the earlier backup went: copy instead
            else:
                self._add(earlier)
                self.linked += 1
                return True
        try:
            entry = self.file(image.path)
        except NotFound:
            return False
        if entry.sha256 != image.sha256:
            log.warning("image %d: %s does not hold its content hash", image.id, image.path)
        return True

    def file(self, relpath: str) -> FileEntry:
        """Copy one file given relative to the data dir; NotFound when it is not there."""
        try:
            size, sha256 = copy_hashed(self.root / relpath, self._place(relpath))
        except FileNotFoundError as exc:
            self._place(relpath).unlink(missing_ok=True)
            raise NotFound(relpath) from exc
        entry = FileEntry(relpath, size, sha256)
        self._add(entry)
        return entry

    def tree(self, folder: Path, skip_top: set[str]) -> None:
        """Copy every finished file under ``folder`` (hidden names are work in progress)."""
        if not folder.is_dir():
            return
        for path in sorted(folder.rglob("*")):
            relative = path.relative_to(folder)
            if relative.parts[0] in skip_top or any(p.startswith(".") for p in relative.parts):
                continue
            if path.is_file():
                with contextlib.suppress(NotFound):  # an old model version removed meanwhile
                    self.file(path.relative_to(self.root).as_posix())

    def _place(self, relpath: str) -> Path:
        target = self.target / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def _add(self, entry: FileEntry) -> None:
        self.entries.append(entry)
        self.bytes += entry.size


def _sort_gone(
    ctx: Context, gone: list[KeptImage], manifest: Manifest, report: BackupReport
) -> None:
    """Originals missing at copy time: purged since the snapshot (the restore applies that), or
    missing from the data dir itself (damage, carried over and reported)."""
    if not gone:
        return
    with ctx.sessions() as session:
        now = {
            image.id: image
            for image in session.scalars(select(Image).where(Image.id.in_([g.id for g in gone])))
        }
    for image in gone:
        live = now.get(image.id)
        if live is not None and live.purged_at is not None:
            purged_at = as_utc(live.purged_at)
            manifest.vanished.append(
                {
                    "image_id": image.id,
                    "status": str(live.status),
                    "purged_at": purged_at.isoformat() if purged_at else None,
                }
            )
            report.vanished.append(image.id)
        else:
            log.warning("image %d: its original %s is not in the data dir", image.id, image.path)
            manifest.missing.append(image.id)
            report.missing.append(image.id)


def _previous(dest: Path) -> tuple[Path, Manifest] | None:
    """The newest whole backup in ``dest`` and its manifest, to link unchanged originals from."""
    for _moment, path in reversed(complete_backups(dest)):
        try:
            return path, Manifest.read(path)
        except BackupError as exc:
            log.warning("not linking from %s: %s", path, exc)
    return None


# -- the periodic backup ----------------------------------------------------------------------


def backup_if_due(ctx: Context, *, now: datetime | None = None) -> BackupReport | None:
    """Write a backup into ``SCENERY_BACKUP_DIR`` when the newest there is older than the
    interval, then keep only the newest ``SCENERY_BACKUP_KEEP``. None when not due (or off)."""
    folder = ctx.settings.backup_dir
    if folder is None:
        return None
    now = utcnow() if now is None else now
    interval = timedelta(hours=ctx.settings.backup_interval_hours)
    done = complete_backups(folder)
    running = [path for touched, path in partial_backups(folder) if now - touched < ABANDONED_AFTER]
    if (done and now - done[-1][0] < interval) or running:
        return None
    report = write_backup(ctx, folder, now=now)
    prune_backups(folder, ctx.settings.backup_keep, now=now)
    return report


def prune_backups(folder: Path, keep: int, *, now: datetime | None = None) -> list[Path]:
    """Delete all but the newest ``keep`` whole backups, and partial ones left by a killed
    process; other entries of the folder are not ours and stay. Returns what was deleted."""
    now = utcnow() if now is None else now
    old = [path for _, path in complete_backups(folder)[:-keep]]
    old += [path for touched, path in partial_backups(folder) if now - touched >= ABANDONED_AFTER]
    for path in old:
        shutil.rmtree(path)
        log.info("deleted old backup %s", path)
    return old
