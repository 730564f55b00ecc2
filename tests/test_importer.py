"""Importing files: stored, embedded, indexed; duplicates skipped; bad files reported."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from scenery.context import Context
from scenery.embed import OpenClipEmbedder
from scenery.errors import ModelLoadError
from scenery.importer import Importer, discover
from scenery.models import Embedding, Image, ImageStatus
from tests import badfiles


def count(ctx: Context, *where: object) -> int:
    with ctx.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Image).where(*where)) or 0)


def test_imports_every_photo_once(ctx: Context, photo_dir: Path) -> None:
    files = discover([photo_dir])
    report = Importer(ctx).run(files)
    assert len(report.imported) == 15 and report.failed == [] and report.duplicates == []
    assert count(ctx, Image.status == ImageStatus.PUBLISHED) == 15
    again = Importer(ctx).run(discover([photo_dir]))
    assert again.imported == [] and len(again.duplicates) == 15
    assert {image_id for _, image_id in again.duplicates} == {i for _, i in report.imported}


def test_stores_files_rows_and_embeddings(ctx: Context, photo_dir: Path) -> None:
    Importer(ctx).run(discover([photo_dir]))
    with ctx.sessions() as session:
        image = session.scalars(select(Image).where(Image.source_name == "bridge.jpg")).one()
        embedding = session.get(Embedding, (image.id, ctx.embedder.name))
    data = (photo_dir / "bridge.jpg").read_bytes()
    assert (ctx.settings.root / image.path).read_bytes() == data
    assert image.bytes == len(data) and image.format == "JPEG"
    assert image.path == f"images/{image.sha256[:2]}/{image.sha256[2:4]}/{image.sha256}.jpg"
    assert ctx.storage.has_files(image.sha256, "jpg")
    assert embedding is not None and embedding.dim == 64
    vector = np.frombuffer(embedding.vector, np.float32)
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
    assert image.id in ctx.index
    assert len(image.phash) == 64


def test_bad_files_are_reported_and_do_not_stop_the_run(ctx: Context, photo_dir: Path) -> None:
    bad = badfiles.write_bad_files(photo_dir, photo_dir / "life.jpg")
    report = Importer(ctx).run(discover([photo_dir]))
    reasons = {path.name: reason for path, reason in report.failed}
    assert len(report.imported) == 15
    assert "corrupt" in reasons[bad["corrupt"].name]
    assert "truncated" in reasons[bad["truncated"].name]
    assert "not an image" in reasons[bad["text"].name]
    assert "decompression bomb" in reasons[bad["bomb"].name]
    assert count(ctx) == 15  # nothing recorded for the failures
    stored = list((ctx.settings.images_dir).rglob("*.*"))
    assert len(stored) == 15  # and no stray files


def test_copies_within_one_run_are_duplicates(ctx: Context, photo_dir: Path) -> None:
    (photo_dir / "sub").mkdir()
    shutil.copy(photo_dir / "flow.jpg", photo_dir / "sub" / "flow-copy.jpg")
    report = Importer(ctx).run(discover([photo_dir]))
    assert len(report.imported) == 15
    [(path, image_id)] = report.duplicates
    first = dict((p.name, i) for p, i in report.imported)["flow.jpg"]
    assert path.name == "flow-copy.jpg" and image_id == first


def test_no_publish_queues_and_keeps_out_of_the_index(ctx: Context, photo_dir: Path) -> None:
    report = Importer(ctx, publish=False).run(discover([photo_dir]))
    assert count(ctx, Image.status == ImageStatus.QUEUED) == 15
    assert not any(image_id in ctx.index for _, image_id in report.imported)


def test_oversized_files_are_refused(ctx: Context, photo_dir: Path, settings: object) -> None:
    small_ctx = Context(ctx.settings.model_copy(update={"max_file_bytes": 100_000}), ctx.embedder)
    report = Importer(small_ctx).run(discover([photo_dir]))
    assert report.failed and all("file too large" in reason for _, reason in report.failed)
    assert len(report.imported) + len(report.failed) == 15
    small_ctx.close()


def test_discover_walks_folders_and_skips_hidden_and_foreign_files(tmp_path: Path) -> None:
    for name in ("a.JPG", "b.png", "c.txt", ".hidden.jpg", "deep/d.webp", ".git/e.jpg"):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    found = {p.relative_to(tmp_path).as_posix() for p in discover([tmp_path])}
    assert found == {"a.JPG", "b.png", "deep/d.webp"}
    assert discover([tmp_path / "c.txt"]) == [tmp_path / "c.txt"]  # named files are tried anyway


def test_unloadable_model_stops_before_any_file_is_written(ctx: Context, photo_dir: Path) -> None:
    broken = Context(ctx.settings, OpenClipEmbedder("ViT-B-32", "/missing/weights.safetensors"))
    with pytest.raises(ModelLoadError, match="SCENERY_CLIP_PRETRAINED"):
        Importer(broken).run(discover([photo_dir]))
    assert count(ctx) == 0
    assert [p for p in ctx.settings.root.rglob("*") if p.is_file() and "images" in p.parts] == []
    assert not any(p.is_file() for p in ctx.settings.thumbs_dir.rglob("*"))
    broken.close()
