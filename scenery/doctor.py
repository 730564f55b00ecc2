"""Consistency checks between the database, the files and the vector index.

Files younger than ``ORPHAN_GRACE_SECONDS`` are never orphans: ingest and import write files
before the commit of the rows that name them. An original or thumbnail is an orphan once no
live image row has its content hash: none at all, or one whose files were purged (deleted or
long rejected: the row stays, its files go after the commit, and a kill in between leaves
them). Temporary files are those of atomic writes that never finished. Download folders
belong to runs, and are dead once their run's lease is over
(``scenery.housekeeping.dead_downloads``)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from scenery.batches import chunked
from scenery.context import Context
from scenery.errors import NotFound
from scenery.housekeeping import dead_downloads
from scenery.models import Embedding, Image, ImageStatus
from scenery.storage import SHA256_RE, Storage


@dataclass
class Findings:
    rows_without_files: list[int] = field(default_factory=list)
    files_without_rows: list[Path] = field(default_factory=list)
    thumbnails_without_images: list[Path] = field(default_factory=list)
    indexed_not_published: list[int] = field(default_factory=list)
    published_not_indexed: list[int] = field(default_factory=list)
    stray_temp_files: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(vars(self).values())

    def lines(self) -> list[str]:
        """One line per kind of problem, with a few examples."""
        out = []
        for name, items in vars(self).items():
            if items:
                sample = ", ".join(str(i) for i in items[:5])
                more = f" (+{len(items) - 5} more)" if len(items) > 5 else ""
                out.append(f"{name.replace('_', ' ')}: {len(items)}: {sample}{more}")
        return out


def examine(ctx: Context) -> Findings:
    """Compare image rows, files on disk and the index as this process opens it."""
    findings = Findings()
    with ctx.sessions() as session:
        rows = session.execute(
            select(Image.id, Image.sha256, Image.path, Image.status, Image.purged_at)
        ).all()
        embedded = set(
            session.scalars(select(Embedding.image_id).where(Embedding.model == ctx.embedder.name))
        )
    live = {row.sha256 for row in rows if row.purged_at is None}
    for row in rows:
        if row.purged_at is None and not (ctx.settings.root / row.path).is_file():
            findings.rows_without_files.append(row.id)
    for path in _old_files(ctx.settings.images_dir, ctx.storage):
        if _is_temp(path):
            findings.stray_temp_files.append(path)
        elif not (SHA256_RE.fullmatch(path.stem) and path.stem in live):
            findings.files_without_rows.append(path)
    for path in _old_files(ctx.settings.thumbs_dir, ctx.storage):
        if _is_temp(path):
            findings.stray_temp_files.append(path)
        elif _thumbnail_of(ctx.storage, path) not in live:
            findings.thumbnails_without_images.append(path)
    findings.stray_temp_files += dead_downloads(ctx)
    published = {row.id for row in rows if row.status == ImageStatus.PUBLISHED} & embedded
    indexed = set(ctx.index.index.ids)
    findings.indexed_not_published = sorted(indexed - published)
    findings.published_not_indexed = sorted(published - indexed)
    return findings


def repair(ctx: Context, findings: Findings) -> None:
    """Remove orphan and temporary files and rebuild the index if it disagrees.

    Each file is checked again just before it goes: a row naming it may have committed since
    ``examine``, or a writer may have found it and touched it (``Storage.save_original``)."""
    orphans = findings.files_without_rows + findings.thumbnails_without_images
    with ctx.sessions() as session:
        claimed = _live_shas(session, [p.stem for p in orphans if SHA256_RE.fullmatch(p.stem)])
    for path in orphans + findings.stray_temp_files:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.stem not in claimed and not ctx.storage.is_young(path):
            path.unlink(missing_ok=True)
    if findings.indexed_not_published or findings.published_not_indexed:
        ctx.index.rebuild()
        ctx.index.save()


def _old_files(root: Path, storage: Storage) -> Iterator[Path]:
    """Files under ``root`` older than the grace period, in order."""
    now = time.time()
    for path in sorted(root.rglob("*")):
        # Young: an ingest or import may be about to commit the row that names it.
        if path.is_file() and not storage.is_young(path, now):
            yield path


def _is_temp(path: Path) -> bool:
    return path.suffix == ".tmp"


def _thumbnail_of(storage: Storage, path: Path) -> str | None:
    """The content hash whose thumbnail ``path`` is, if it is where one of a known size goes."""
    try:
        size = int(path.relative_to(storage.root / "thumbs").parts[0])
        expected = storage.thumb_path(path.stem, size)
    except (ValueError, NotFound):
        return None
    return path.stem if expected == path else None


def _live_shas(session: Session, sha256s: list[str]) -> set[str]:
    """The content hashes among these that a live (not purged) image row holds."""
    live: set[str] = set()
    for chunk in chunked(sha256s, 500):  # SQLite's bound-parameter limit
        query = select(Image.sha256).where(Image.sha256.in_(chunk), Image.purged_at.is_(None))
        live.update(session.scalars(query))
    return live
