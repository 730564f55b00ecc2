"""Backup and restore: how long each stage takes, and what linking to the previous backup saves.

Run: ``python bench/backup.py [--images 2000 --kib 1024 --repeats 3] [--pg-url URL]
[--quick]``. ``--quick``: 120 images of 32 KiB, one repeat, a smoke run. ``--pg-url ''``
skips PostgreSQL. About 20 minutes with the defaults on a busy 2-core machine, and 4 GB of
scratch space in the temp dir.

A synthetic gallery, built straight into the database and the data dir (no model runs):
``--images`` published image rows, each with a 512-d embedding (the ViT-B-32 width, so the
index rebuilt on restore has real-size vectors), a publication event, an original of ``--kib``
KiB and a 40 KiB grid thumbnail (random bytes: backup and restore never decode them). For
SQLite (a file) and PostgreSQL (a new database on the ``--pg-url`` server; the restore goes
into another new one), each repeat times ``scenery.backup.write_backup`` into an empty folder,
a second backup into the same folder (its originals hard-linked from the first), and
``scenery.restore.restore_backup`` of the first into an empty data dir, stage by stage, as the
functions themselves time them. Medians of ``--repeats``. MiB/s counts the backup's bytes (or,
for the second backup, the bytes it lists) over the stage's seconds. "new on disk" is the size
of the second backup's files that are not links. Each backup and restore ends with one
``os.sync()``, so the figures include writing everything to disk.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import shutil
import statistics
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from scenery.backup import write_backup
from scenery.config import GRID_THUMB, Settings
from scenery.context import Context
from scenery.db import transaction
from scenery.models import Embedding, Image, ImageStatus, PublicationEvent, utcnow
from scenery.restore import restore_backup

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"  # creates and drops databases
MODEL = "ViT-B-32"
THUMB_KIB = 40
MIB = 2**20


def build_gallery(ctx: Context, images: int, kib: int, seed: int = 7) -> int:
    """Rows, embeddings and files of ``images`` published images; the bytes of their files."""
    rng = random.Random(seed)
    name, dim = ctx.embedder.name, ctx.embedder.dim
    total = 0
    now = utcnow()
    for start in range(0, images, 500):
        count = min(500, images - start)
        rows = []
        for _ in range(count):
            data = rng.randbytes(kib * 1024)
            sha = hashlib.sha256(data).hexdigest()
            original = ctx.storage.original_path(sha, "jpg")
            original.parent.mkdir(parents=True, exist_ok=True)
            original.write_bytes(data)
            thumb = ctx.storage.thumb_path(sha, GRID_THUMB)
            thumb.parent.mkdir(parents=True, exist_ok=True)
            thumb.write_bytes(rng.randbytes(THUMB_KIB * 1024))
            total += len(data) + THUMB_KIB * 1024
            rows.append(sha)
        vectors = np.random.default_rng(start).standard_normal((count, dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        with transaction(ctx.sessions) as session:
            added = [
                Image(
                    sha256=sha,
                    path=ctx.storage.original_relpath(sha, "jpg"),
                    width=4000,
                    height=3000,
                    bytes=kib * 1024,
                    format="JPEG",
                    phash="0" * 64,
                    status=ImageStatus.PUBLISHED,
                    published_at=now,
                )
                for sha in rows
            ]
            session.add_all(added)
            session.flush()
            for image, vector in zip(added, vectors, strict=True):
                session.add(
                    Embedding(image_id=image.id, model=name, dim=dim, vector=vector.tobytes())
                )
                session.add(PublicationEvent(image_id=image.id, published=True))
    return total


@contextmanager
def new_database(admin_url: str) -> Iterator[str]:
    """A new PostgreSQL database (its ``public`` schema holds the gallery), dropped after."""
    name = f"bench_backup_{uuid.uuid4().hex[:10]}"
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        engine.dispose()


def new_on_disk(folder: Path) -> int:
    """Bytes of the files under ``folder`` that are not hard links to another file."""
    return sum(
        p.stat().st_size for p in folder.rglob("*") if p.is_file() and p.stat().st_nlink == 1
    )


def measure(
    kind: str, source: Settings, scratch: Path, repeats: int, pg_url: str | None
) -> dict[str, list[float]]:
    """Seconds per stage (and bytes), one list entry per repeat."""
    ctx = Context(source)
    out: dict[str, list[float]] = {}
    try:
        for repeat in range(repeats):
            dest = scratch / f"{kind}-backups-{repeat}"
            start = utcnow()
            first = write_backup(ctx, dest, now=start)
            second = write_backup(ctx, dest, now=start + timedelta(seconds=1))
            for stage, seconds in first.seconds.items():
                out.setdefault(f"backup: {stage}", []).append(seconds)
            out.setdefault("backup: total", []).append(sum(first.seconds.values()))
            out.setdefault("second backup: total", []).append(sum(second.seconds.values()))
            out.setdefault("bytes", []).append(first.bytes)
            out.setdefault("new on disk", []).append(new_on_disk(second.path))
            out.setdefault("linked", []).append(second.linked)
            with restore_target(kind, scratch / f"{kind}-restored-{repeat}", pg_url) as target:
                restored = restore_backup(first.path, target)
                assert restored.findings.ok, restored.findings.lines()
            for stage, seconds in restored.seconds.items():
                out.setdefault(f"restore: {stage}", []).append(seconds)
            out.setdefault("restore: total", []).append(sum(restored.seconds.values()))
            shutil.rmtree(dest)
    finally:
        ctx.close()
    return out


@contextmanager
def restore_target(kind: str, data_dir: Path, pg_url: str | None) -> Iterator[Settings]:
    if kind == "sqlite":
        yield Settings(data_dir=data_dir, clip_model=MODEL)
    else:
        assert pg_url is not None
        with new_database(pg_url) as url:
            yield Settings(data_dir=data_dir, clip_model=MODEL, database_url=url)
    shutil.rmtree(data_dir, ignore_errors=True)


def report(kind: str, figures: dict[str, list[float]]) -> None:
    size = statistics.median(figures.pop("bytes"))
    new = statistics.median(figures.pop("new on disk"))
    linked = statistics.median(figures.pop("linked"))
    for stage, values in figures.items():
        seconds = statistics.median(values)
        moves_bytes = stage in ("backup: files", "backup: total", "second backup: total")
        moves_bytes |= stage in ("restore: check and copy files", "restore: total")
        rate = f"{size / MIB / seconds:10.1f}" if moves_bytes and seconds > 0 else f"{'-':>10}"
        print(f"{kind:<12}{stage:<34}{seconds:10.3f}{rate}")
    first, second = (
        statistics.median(figures[k]) for k in ("backup: total", "second backup: total")
    )
    restore = statistics.median(figures["restore: total"])
    print(
        f"{kind}: second backup linked {linked:.0f} originals and wrote {new / MIB:.1f} MiB "
        f"new on disk of {size / MIB:.1f} MiB ({new / size:.1%}); "
        f"time second/first {second / first:.2f}x, restore/backup {restore / first:.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--kib", type=int, default=1024, help="size of each original")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pg-url", default=PG_URL, help="empty: skip PostgreSQL")
    parser.add_argument("--quick", action="store_true", help="smoke run: 120 small images")
    args = parser.parse_args()
    if args.quick:
        args.images, args.kib, args.repeats = 120, 32, 1
    with tempfile.TemporaryDirectory(prefix="bench-backup-") as tmp:
        scratch = Path(tmp)
        kinds = ["sqlite"] + (["postgresql"] if args.pg_url else [])
        for kind in kinds:
            with source_settings(kind, scratch / f"{kind}-data", args.pg_url) as settings:
                ctx = Context(settings)
                ctx.migrate()
                size = build_gallery(ctx, args.images, args.kib)
                ctx.close()
                if kind == kinds[0]:
                    print(
                        f"gallery: {args.images} images, {size / MIB:.1f} MiB of originals and "
                        f"grid thumbnails, {MODEL} embeddings; {args.repeats} repeats"
                    )
                    print(f"{'database':<12}{'stage':<34}{'median s':>10}{'MiB/s':>10}")
                report(kind, measure(kind, settings, scratch, args.repeats, args.pg_url))


@contextmanager
def source_settings(kind: str, data_dir: Path, pg_url: str | None) -> Iterator[Settings]:
    if kind == "sqlite":
        yield Settings(data_dir=data_dir, clip_model=MODEL)
        return
    assert pg_url is not None
    with new_database(pg_url) as url:
        yield Settings(data_dir=data_dir, clip_model=MODEL, database_url=url)


if __name__ == "__main__":
    main()
