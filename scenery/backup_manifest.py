"""What a backup folder holds and how it is read: the manifest, hashed copies, backup names.

A backup is one folder, ``scenery-<UTC time>``::

    manifest.json            what is inside, every file with its size and SHA-256
    database.sqlite3         SQLite: a copy made with SQLite's online backup API, or
    database.pgdump          PostgreSQL: ``pg_dump --format=custom`` of the gallery's schema
    files/images/...         the originals the database's image rows name
    files/thumbs/400/...     their grid thumbnails (larger ones are rendered on request)
    files/models/...         trained curation models (not the CLIP download cache)
    files/secret_key         the generated Flask secret, if there is one

It is written under a hidden ``.scenery-<time>.<random>.partial`` name and renamed when
complete, so a folder with the backup name is always whole.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scenery.errors import SceneryError

FORMAT = 1
MANIFEST = "manifest.json"
FILES = "files"
CHUNK = 1 << 20
NAME_RE = re.compile(r"^scenery-(\d{8}T\d{6}Z)$")
PARTIAL_RE = re.compile(r"^\.scenery-(\d{8}T\d{6}Z)\.[0-9a-f]+\.partial$")
TIME_FORMAT = "%Y%m%dT%H%M%SZ"


class BackupError(SceneryError):
    """A backup cannot be written, is damaged, or cannot be restored where asked."""


@dataclass(frozen=True)
class FileEntry:
    """One file of the backup: its path relative to the data dir, size and SHA-256."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class DatabaseDump:
    """The database snapshot: which kind, its file in the backup, and what it holds."""

    dialect: str  # "sqlite" or "postgresql"
    file: str
    size: int
    sha256: str
    revision: str | None  # the Alembic revision of its schema
    schema: str | None = None  # PostgreSQL: the schema that was dumped


@dataclass
class Manifest:
    """Everything a restore needs to know about one backup."""

    created_at: datetime
    scenery_version: str
    database: DatabaseDump
    images: dict[str, int]  # image rows by status, as of the database snapshot
    files: list[FileEntry] = field(default_factory=list)
    # Rows whose files a delete or retention removed between the snapshot and the copy: the
    # restore applies that change (status and purged_at as the live database had them).
    vanished: list[dict[str, Any]] = field(default_factory=list)
    # Rows whose original was missing from the data dir itself (damage the backup carries over).
    missing: list[int] = field(default_factory=list)
    format: int = FORMAT

    def write(self, folder: Path) -> None:
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        (folder / MANIFEST).write_text(json.dumps(data, indent=1))

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        """The manifest of the backup in ``folder``, or a BackupError saying why not."""
        path = folder / MANIFEST
        if not path.is_file():
            raise BackupError(f"{folder} is not a Scenery backup: it has no {MANIFEST}")
        try:
            data = json.loads(path.read_text())
            if data.get("format") != FORMAT:
                raise BackupError(
                    f"{folder} is a backup of format {data.get('format')!r}; this Scenery reads "
                    f"format {FORMAT}"
                )
            return cls(
                created_at=datetime.fromisoformat(data["created_at"]),
                scenery_version=data["scenery_version"],
                database=DatabaseDump(**data["database"]),
                images=dict(data["images"]),
                files=[FileEntry(**entry) for entry in data["files"]],
                vanished=list(data.get("vanished", [])),
                missing=list(data.get("missing", [])),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise BackupError(f"{path} is damaged: {exc}") from exc


class Stopwatch:
    """Seconds spent in each stage of a backup or restore, in order."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        """The stage that just ended."""
        now = time.perf_counter()
        self.seconds[stage] = now - self._last
        self._last = now


def copy_hashed(source: Path, target: Path) -> tuple[int, str]:
    """Copy a file (times and mode too), returning the size and SHA-256 of what was copied."""
    digest = hashlib.sha256()
    size = 0
    target.parent.mkdir(parents=True, exist_ok=True)
    with source.open("rb") as src, target.open("wb") as dst:
        while chunk := src.read(CHUNK):
            digest.update(chunk)
            dst.write(chunk)
            size += len(chunk)
    shutil.copystat(source, target)
    return size, digest.hexdigest()


def hash_file(path: Path) -> tuple[int, str]:
    """The size and SHA-256 of a file."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def backup_name(moment: datetime) -> str:
    return f"scenery-{moment.astimezone(UTC).strftime(TIME_FORMAT)}"


def name_time(name: str) -> datetime | None:
    """The time in a backup's folder name, if it is one."""
    found = NAME_RE.match(name)
    if not found:
        return None
    return datetime.strptime(found.group(1), TIME_FORMAT).replace(tzinfo=UTC)


def complete_backups(folder: Path) -> list[tuple[datetime, Path]]:
    """The whole backups in ``folder``, oldest first (other entries are not ours)."""
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        moment = name_time(path.name)
        if moment is not None and (path / MANIFEST).is_file():
            found.append((moment, path))
    return sorted(found)


def partial_backups(folder: Path) -> list[tuple[datetime, Path]]:
    """Backups being written (or abandoned by a killed process), each with when it was last
    touched (a backup under way touches its folder every ``HEARTBEAT_SECONDS``)."""
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        if PARTIAL_RE.match(path.name):
            with contextlib.suppress(FileNotFoundError):  # renamed or removed meanwhile
                found.append((datetime.fromtimestamp(path.stat().st_mtime, UTC), path))
    return sorted(found)
