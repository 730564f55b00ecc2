"""``scenery doctor --fix`` while ingest and import write: files written before their rows
commit are not orphans, so nothing an ingest is about to commit is removed; old orphans
(originals and thumbnails of no live image) and temporaries go."""

from __future__ import annotations

import os
import time
from pathlib import Path

from sqlalchemy import select

from scenery.config import GRID_THUMB, PAGE_THUMB
from scenery.context import Context
from scenery.db import transaction
from scenery.doctor import examine, repair
from scenery.embed import OpenClipEmbedder
from scenery.models import Candidate, CandidateState, Image
from scenery.review import delete
from scenery.storage import ORPHAN_GRACE_SECONDS
from tests.fakes.reddit import FakeReddit
from tests.helpers import import_colours, ingest_held_at_fourth_photo


def test_doctor_fix_during_an_ingest_loses_nothing(
    tmp_path: Path, db_url: str, photos: list[Path], tiny_embedder: OpenClipEmbedder
) -> None:
    fake = FakeReddit()
    with fake.running():
        settings = fake.settings(
            tmp_path,
            database_url=db_url,
            clip_batch_size=1,
            download_concurrency=1,
            nsfw_nudenet=False,
            # The held download must outlast the doctor's work, however slow the machine.
            download_read_timeout=120.0,
            download_total_timeout=120.0,
        )
        ctx = Context(settings, embedder=tiny_embedder)
        ctx.migrate()
        # By the fourth download the second and third photos' files are written, their rows
        # are not.
        with ingest_held_at_fourth_photo(ctx, fake, photos):
            written = sorted(p.stem for p in settings.images_dir.rglob("*.jpg"))
            doctor = Context(settings, embedder=tiny_embedder)  # another process's doctor
            with doctor.sessions() as session:
                committed = set(session.scalars(select(Image.sha256)))
            assert set(written) - committed, "nothing was waiting for its commit"
            repair(doctor, examine(doctor))
            assert sorted(p.stem for p in settings.images_dir.rglob("*.jpg")) == written
            assert [p.name for p in settings.downloads_dir.iterdir()], "the run's folder went"
        with ctx.sessions() as session:
            states = session.scalars(select(Candidate.state)).all()
        assert len(states) == 4 and CandidateState.PENDING not in states
        doctor.index.refresh(force=True)
        findings = examine(doctor)
        assert findings.ok, findings.lines()
        doctor.close()
        ctx.close()


def test_only_old_files_without_rows_are_orphans(ctx: Context, photo_dir: Path) -> None:
    orphan = ctx.settings.images_dir / "ab" / "cd" / ("ab" * 32 + ".jpg")
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"x")
    temp = orphan.parent / f".{orphan.name}.k2j3.tmp"
    temp.write_bytes(b"half")
    assert examine(ctx).ok  # young: an ingest may be about to commit its row
    old = time.time() - ORPHAN_GRACE_SECONDS - 1
    for path in (orphan, temp):
        os.utime(path, (old, old))
    findings = examine(ctx)
    assert findings.files_without_rows == [orphan] and findings.stray_temp_files == [temp]
    repair(ctx, findings)
    assert not orphan.exists() and not temp.exists() and examine(ctx).ok


def test_a_file_found_already_stored_is_young_again(ctx: Context, photos: list[Path]) -> None:
    """A resumed ingest finds its file from a killed run and keeps it: the file must not look
    old to a doctor that runs before the row commits."""
    data = photos[0].read_bytes()
    sha = "cd" * 32
    path = ctx.storage.original_path(sha, "jpg")
    ctx.storage.save_original(sha, "jpg", data)
    old = time.time() - ORPHAN_GRACE_SECONDS - 1
    os.utime(path, (old, old))
    assert not ctx.storage.is_young(path)
    ctx.storage.save_original(sha, "jpg", data)
    assert ctx.storage.is_young(path)
    assert examine(ctx).files_without_rows == []


def age(*paths: Path) -> None:
    """Make files older than the grace period."""
    old = time.time() - ORPHAN_GRACE_SECONDS - 1
    for path in paths:
        os.utime(path, (old, old))


def test_orphan_thumbnails_and_stale_temporaries_are_found_and_removed(
    ctx: Context, tmp_path: Path
) -> None:
    """After a kill -9: a deleted image whose files outlived its commit, a thumbnail without
    any row, half-written temporaries. Thumbnails of live images and young files stay."""
    ids = import_colours(ctx, tmp_path / "in", {"kept": (200, 40, 40), "gone": (30, 40, 200)})
    with ctx.sessions() as session:
        kept, gone = (session.get_one(Image, ids[name]) for name in ("kept", "gone"))
    shas = {"kept": kept.sha256, "gone": gone.sha256}
    thumbs = {
        (name, size): ctx.storage.ensure_thumbnail(sha, size, ctx.settings.max_image_pixels)
        for name, sha in shas.items()
        for size in (GRID_THUMB, PAGE_THUMB)
    }
    with transaction(ctx.sessions) as session:
        delete(session, [ids["gone"]], "admin")  # killed before remove_files: files stay
    rowless = ctx.storage.thumb_path("ab" * 32, GRID_THUMB)
    rowless.parent.mkdir(parents=True)
    rowless.write_bytes(b"thumb")
    temp = thumbs["kept", GRID_THUMB].parent / ".x.jpg.k2j3.tmp"
    temp.write_bytes(b"half")
    young_orphan = ctx.storage.thumb_path("cd" * 32, PAGE_THUMB)
    young_orphan.parent.mkdir(parents=True)
    young_orphan.write_bytes(b"thumb")
    young_temp = rowless.parent / ".y.jpg.abcd.tmp"
    young_temp.write_bytes(b"half")
    trees = (ctx.settings.images_dir, ctx.settings.thumbs_dir)
    old = [p for tree in trees for p in tree.rglob("*") if p.is_file()]
    age(*(p for p in old if p not in (young_orphan, young_temp)))

    findings = examine(ctx)
    gone_original = ctx.settings.root / gone.path
    assert findings.files_without_rows == [gone_original]
    assert findings.thumbnails_without_images == sorted(
        [thumbs["gone", GRID_THUMB], thumbs["gone", PAGE_THUMB], rowless]
    )
    assert findings.stray_temp_files == [temp]
    repair(ctx, findings)
    assert not any(p.exists() for p in [*findings.thumbnails_without_images, temp])
    assert not gone_original.exists()
    assert thumbs["kept", GRID_THUMB].exists() and thumbs["kept", PAGE_THUMB].exists()
    assert (ctx.settings.root / kept.path).exists()
    assert young_orphan.exists() and young_temp.exists()
    assert examine(ctx).ok
