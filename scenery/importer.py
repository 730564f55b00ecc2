"""``scenery import``: files from disk into stored, embedded, indexed images, through the
same intake as ingest (``scenery.intake``)."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy.exc import IntegrityError

from scenery.batches import chunked
from scenery.context import Context
from scenery.db import transaction
from scenery.errors import ImageRejected
from scenery.imaging import ImageLimits
from scenery.intake import StoredFile, add_image, store_file
from scenery.library import find_by_sha
from scenery.models import ImageStatus

log = logging.getLogger(__name__)

SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})


@dataclass
class ImportReport:
    """What an import did, file by file."""

    imported: list[tuple[Path, int]] = field(default_factory=list)
    duplicates: list[tuple[Path, int]] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


def discover(paths: Iterable[Path]) -> list[Path]:
    """Files to import: named files as given, and image files found under named directories."""
    found: dict[Path, None] = {}
    for path in paths:
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    candidate = Path(root) / name
                    if not name.startswith(".") and candidate.suffix.lower() in SUFFIXES:
                        found.setdefault(candidate, None)
        else:
            found.setdefault(path, None)
    return list(found)


class Importer:
    """Reads, validates, stores, embeds and records image files in batches."""

    def __init__(
        self,
        ctx: Context,
        *,
        publish: bool = True,
        on_file: Callable[[Path], None] | None = None,
        workers: int | None = None,
    ) -> None:
        self.ctx = ctx
        self.publish = publish
        self.on_file = on_file or (lambda _path: None)
        self.workers = workers or min(4, os.cpu_count() or 1)

    def run(self, files: Sequence[Path]) -> ImportReport:
        """Import the given files; bad files are reported, never fatal."""
        report = ImportReport()
        if files:
            self.ctx.embedder.load()  # a model that cannot load stops the run before any file
        seen: set[str] = set()
        dup_shas: list[tuple[Path, str]] = []
        batch_size = self.ctx.settings.clip_batch_size
        with ThreadPoolExecutor(self.workers) as pool:
            for batch in chunked(files, batch_size):
                fresh = self._read_new(batch, seen, dup_shas, report)
                results = list(pool.map(self._prepare_or_reason, fresh))
                prepared = []
                for (path, _sha, _data), result in zip(fresh, results, strict=True):
                    if isinstance(result, str):
                        report.failed.append((path, result))
                    else:
                        prepared.append(result)
                self._store(prepared, dup_shas, report)
                for path in batch:
                    self.on_file(path)
        self._resolve_duplicates(report, dup_shas)
        if self.publish and report.imported:
            self.ctx.index.save()
        return report

    def _read_new(
        self,
        batch: list[Path],
        seen: set[str],
        dup_shas: list[tuple[Path, str]],
        report: ImportReport,
    ) -> list[tuple[Path, str, bytes]]:
        """Read a batch, keeping files whose content is neither stored nor earlier in this run."""
        loaded: list[tuple[Path, str, bytes]] = []
        limit = self.ctx.settings.max_file_bytes
        for path in batch:
            try:
                size = path.stat().st_size
                if size > limit:
                    report.failed.append((path, f"file too large: {size:,} bytes > {limit:,}"))
                    continue
                data = path.read_bytes()
            except OSError as exc:
                report.failed.append((path, f"cannot read file: {exc.strerror or exc}"))
                continue
            loaded.append((path, hashlib.sha256(data).hexdigest(), data))
        with self.ctx.sessions() as session:
            stored = find_by_sha(session, [sha for _, sha, _ in loaded])
        fresh = []
        for path, sha, data in loaded:
            if sha in stored or sha in seen:
                dup_shas.append((path, sha))
            else:
                seen.add(sha)
                fresh.append((path, sha, data))
        return fresh

    def _prepare_or_reason(self, item: tuple[Path, str, bytes]) -> tuple[Path, StoredFile] | str:
        path, sha, data = item
        try:
            max_pixels = ImageLimits.from_settings(self.ctx.settings)
            return path, store_file(data, sha, self.ctx.storage, max_pixels)
        except ImageRejected as exc:
            return exc.reason

    def _store(
        self,
        prepared: list[tuple[Path, StoredFile]],
        dup_shas: list[tuple[Path, str]],
        report: ImportReport,
    ) -> None:
        if not prepared:
            return
        vectors = self.ctx.embedder.encode_images([stored.small for _, stored in prepared])
        try:
            ids = self._insert(prepared, vectors)
        except IntegrityError:
            # Another process stored some of these meanwhile: fall back to one row at a time.
            ids = []
            for one, vector in zip(prepared, vectors, strict=True):
                try:
                    ids += self._insert([one], vector[None, :])
                except IntegrityError:
                    dup_shas.append((one[0], one[1].sha256))
                    ids.append(None)
        kept = [
            (p, i, v) for (p, _), i, v in zip(prepared, ids, vectors, strict=True) if i is not None
        ]
        report.imported += [(path, i) for path, i, _ in kept]
        # Only committed images reach the index: a failed commit leaves nothing to undo there.
        if self.publish and kept:
            self.ctx.index.add([i for _, i, _ in kept], np.stack([v for _, _, v in kept]))

    def _insert(
        self, prepared: list[tuple[Path, StoredFile]], vectors: np.ndarray
    ) -> list[int | None]:
        status = ImageStatus.PUBLISHED if self.publish else ImageStatus.QUEUED
        model = self.ctx.embedder.name
        tagger = self.ctx.tagger
        tags = tagger.tags(vectors) if tagger is not None else [[] for _ in prepared]
        with transaction(self.ctx.sessions) as session:
            images = [
                add_image(
                    session,
                    stored,
                    self.ctx.storage,
                    status=status,
                    model=model,
                    vector=vector,
                    tags=tagged,
                    source="local",
                    source_name=path.name,
                    curation={},
                )
                for (path, stored), vector, tagged in zip(prepared, vectors, tags, strict=True)
            ]
            return [image.id for image in images]

    def _resolve_duplicates(self, report: ImportReport, dup_shas: list[tuple[Path, str]]) -> None:
        """Name, for every duplicate file, the stored image that has its content."""
        with self.ctx.sessions() as session:
            stored = find_by_sha(session, sorted({sha for _, sha in dup_shas}))
        report.duplicates = [(path, stored.get(sha, -1)) for path, sha in dup_shas]
