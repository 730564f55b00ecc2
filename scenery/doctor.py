"""Consistency checks between the database, the files and the vector index.

Files younger than ``ORPHAN_GRACE_SECONDS`` are never orphans: ingest and import write files
before the commit of the rows that name them. Download folders belong to runs, and are dead
once their run's lease is over (``scenery.housekeeping.dead_downloads``)."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from scenery.context import Context
from scenery.housekeeping import dead_downloads
from scenery.library import find_by_sha
from scenery.models import Embedding, Image, ImageStatus
from scenery.storage import SHA256_RE


@dataclass
class Findings:
    rows_without_files: list[int] = field(default_factory=list)
    files_without_rows: list[Path] = field(default_factory=list)
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
    known = {row.sha256 for row in rows}
    for row in rows:
        if row.purged_at is None and not (ctx.settings.root / row.path).is_file():
            findings.rows_without_files.append(row.id)
    now = time.time()
    for path in sorted(ctx.settings.images_dir.rglob("*")):
        if not path.is_file() or ctx.storage.is_young(path, now):
            continue  # an ingest or import may be about to commit the row that names it
        if path.name.startswith(".") and path.name.endswith(".tmp"):
            findings.stray_temp_files.append(path)
        elif not (SHA256_RE.fullmatch(path.stem) and path.stem in known):
            findings.files_without_rows.append(path)
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
    orphans = findings.files_without_rows
    with ctx.sessions() as session:
        claimed = set(
            find_by_sha(session, [p.stem for p in orphans if SHA256_RE.fullmatch(p.stem)])
        )
    for path in orphans + findings.stray_temp_files:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.stem not in claimed and not ctx.storage.is_young(path):
            path.unlink(missing_ok=True)
    if findings.indexed_not_published or findings.published_not_indexed:
        ctx.index.rebuild()
        ctx.index.save()
