"""Bringing a backup back: into an empty data dir and database (or, forced, over a gallery).

Every file is checked against the manifest's size and SHA-256 while it is copied into a staging
folder; a damaged backup is refused before the data dir or the database is touched. Then the
database snapshot is loaded, the files moved into place, the schema migrated (the backup may
come from an older Scenery), deletions that raced the backup applied, the vector index rebuilt
from the database, and the doctor's checks run on the result.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy.engine import make_url

from scenery.backup_db import check_target, restore_database, sqlite_path
from scenery.backup_manifest import (
    FILES,
    BackupError,
    FileEntry,
    Manifest,
    Stopwatch,
    copy_hashed,
    hash_file,
)
from scenery.config import Settings
from scenery.context import Context
from scenery.db import transaction
from scenery.doctor import Findings, examine
from scenery.embed import Embedder
from scenery.library import set_status
from scenery.models import Image, ImageStatus, utcnow

KEPT_ON_FORCE = {"open_clip"}  # under models/: the CLIP download cache is not the gallery's
QUEUE_FILES = {"queue.db", "queue.db-wal", "queue.db-shm"}  # tasks only say "look now"
TOP_LEVEL = {"images", "thumbs", "models", "secret_key"}  # what a backup may put back
Progress = Callable[[int, int], None]


@dataclass
class RestoreReport:
    images: dict[str, int]
    files: int
    bytes: int
    revision: str | None  # the schema revision of the backup, before migrating
    indexed: int
    findings: Findings
    seconds: dict[str, float]  # per stage


def verify_backup(source: Path, on_progress: Progress | None = None) -> Manifest:
    """Check every file of a backup against its manifest; BackupError names the first bad one."""
    manifest = _read(source)
    _verify(source / manifest.database.file, manifest.database.size, manifest.database.sha256)
    for done, entry in enumerate(manifest.files, 1):
        _verify(source / FILES / entry.path, entry.size, entry.sha256)
        if on_progress:
            on_progress(done, len(manifest.files))
    return manifest


def restore_backup(
    source: Path,
    settings: Settings,
    *,
    force: bool = False,
    embedder: Embedder | None = None,
    on_progress: Progress | None = None,
) -> RestoreReport:
    """Restore the backup in ``source`` into the data dir and database of ``settings``."""
    clock = Stopwatch()
    manifest = _read(source)
    tables = check_target(manifest.database, settings.db_url)
    if not force:
        _refuse_occupied(settings, tables)
    dump = source / manifest.database.file
    _verify(dump, manifest.database.size, manifest.database.sha256)
    settings.root.mkdir(parents=True, exist_ok=True)
    staging = settings.root / f".restore-{uuid.uuid4().hex[:8]}"
    try:
        copied = _stage(source, manifest.files, staging, on_progress)
        clock.lap("check and copy files")
        if force:
            _clear(settings, staging)
        restore_database(manifest.database, dump, settings.db_url, force=force)
        clock.lap("database")
        _move_into(staging, settings.root)
        os.sync()
        clock.lap("sync")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    ctx = Context(settings, embedder=embedder)
    try:
        ctx.migrate()
        _apply_vanished(ctx, manifest.vanished)
        clock.lap("migrate")
        index = ctx.index  # no snapshot in the data dir: built from the database
        index.save()
        clock.lap("index")
        findings = examine(ctx)
        clock.lap("doctor")
    finally:
        ctx.close()
    return RestoreReport(
        manifest.images,
        len(manifest.files),
        copied,
        manifest.database.revision,
        len(index),
        findings,
        clock.seconds,
    )


def _read(source: Path) -> Manifest:
    manifest = Manifest.read(source)
    for entry in manifest.files:
        parts = PurePosixPath(entry.path).parts
        if not parts or parts[0] not in TOP_LEVEL or ".." in parts or entry.path.startswith("/"):
            raise BackupError(f"{source} is damaged: its manifest names {entry.path!r}")
    return manifest


def _verify(path: Path, size: int, sha256: str) -> None:
    try:
        found = hash_file(path)
    except FileNotFoundError:
        raise BackupError(f"the backup is damaged: {path} is missing") from None
    _compare(path, found, (size, sha256))


def _compare(path: Path, found: tuple[int, str], expected: tuple[int, str]) -> None:
    if found != expected:
        raise BackupError(
            f"the backup is damaged: {path} has {found[0]} bytes with SHA-256 {found[1]}, its "
            f"manifest says {expected[0]} bytes with SHA-256 {expected[1]}; nothing was restored"
        )


def _refuse_occupied(settings: Settings, tables: list[str]) -> None:
    """Refuse a target that holds a gallery, or anything else that is not ours to replace."""
    file = _sqlite_file(settings)  # the database check covers it
    database = {Path(f"{file}{s}") for s in ("", "-wal", "-shm", "-journal")} if file else set()
    found = []
    if settings.root.is_dir():
        for path in sorted(settings.root.rglob("*")):
            relative = path.relative_to(settings.root)
            if not path.is_file() or path in database or relative.as_posix() in QUEUE_FILES:
                continue
            if relative.parts[:2] == ("models", "open_clip"):
                continue
            found.append(relative.as_posix())
    if found or tables:
        what = [f"{settings.root}: {', '.join(found[:3])}"] if found else []
        what += [f"the database: {', '.join(sorted(tables)[:3])}"] if tables else []
        raise BackupError(
            f"the target is not empty ({'; '.join(what)}...): restore into an empty data dir "
            "and database, or pass --force to replace the gallery there"
        )


def _sqlite_file(settings: Settings) -> Path | None:
    url = make_url(settings.db_url)
    return sqlite_path(url) if url.get_backend_name() == "sqlite" else None


def _stage(
    source: Path, entries: list[FileEntry], staging: Path, on_progress: Progress | None
) -> int:
    """Copy the backup's files into ``staging``, checking each; the bytes copied."""
    total = 0
    for done, entry in enumerate(entries, 1):
        path = source / FILES / entry.path
        try:
            found = copy_hashed(path, staging / entry.path)
        except FileNotFoundError:
            raise BackupError(f"the backup is damaged: {path} is missing") from None
        _compare(path, found, (entry.size, entry.sha256))
        total += entry.size
        if on_progress:
            on_progress(done, len(entries))
    return total


def _clear(settings: Settings, staging: Path) -> None:
    """Remove the gallery's files from the data dir (--force), keeping the CLIP cache."""
    root = settings.root
    for name in ("images", "thumbs", "index", "tmp"):
        shutil.rmtree(root / name, ignore_errors=True)
    for old in root.glob(".restore-*"):  # left by a restore that was killed
        if old != staging:
            shutil.rmtree(old, ignore_errors=True)
    (root / "secret_key").unlink(missing_ok=True)
    if settings.models_dir.is_dir():
        for path in settings.models_dir.iterdir():
            if path.name in KEPT_ON_FORCE:
                continue
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()


def _move_into(source: Path, target: Path) -> None:
    """Move a tree into place, merging folders that exist already."""
    target.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        destination = target / path.name
        if path.is_dir() and destination.is_dir():
            _move_into(path, destination)
        else:
            os.replace(path, destination)


def _apply_vanished(ctx: Context, vanished: list[dict[str, Any]]) -> None:
    """Rows whose files a delete or retention removed while the backup was being written get
    the state that removal gave them, so that no row names a file the backup lacks."""
    if not vanished:
        return
    with transaction(ctx.sessions) as session:
        for entry in vanished:
            image = session.get(Image, int(entry["image_id"]))
            if image is None:
                continue
            set_status(session, image, ImageStatus(entry["status"]))
            purged_at = entry.get("purged_at")
            image.purged_at = datetime.fromisoformat(purged_at) if purged_at else utcnow()
