"""``scenery doctor --fix`` while ingest and import write: files written before their rows
commit are not orphans, so nothing an ingest is about to commit is removed."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from sqlalchemy import select

from ingest.runner import run_ingest
from scenery.context import Context
from scenery.doctor import examine, repair
from scenery.embed import OpenClipEmbedder
from scenery.models import Candidate, CandidateState, Image
from scenery.storage import ORPHAN_GRACE_SECONDS
from tests.fakes.reddit import FakeReddit
from tests.fakes.reddit_posts import make_post


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
        )
        ctx = Context(settings, embedder=tiny_embedder)
        ctx.migrate()
        posts = [
            make_post(f"p{n}", url=fake.add_photo(f"/img/p{n}.jpg", photo))
            for n, photo in enumerate(photos[:3])
        ]
        fake.add_posts("EarthPorn", posts)
        # The third download stalls: by then the second photo's files are written and its
        # decision waits for the next batch, uncommitted.
        held = fake.hold("/img/p2.jpg")
        errors: list[BaseException] = []

        def ingest() -> None:
            try:
                run_ingest(ctx, ["EarthPorn"], limit=50)
            except BaseException as exc:  # reported on the test's thread
                errors.append(exc)

        runner = threading.Thread(target=ingest)
        runner.start()
        assert held.arrived.wait(60), "the ingest never reached the third download"
        written = sorted(p.stem for p in settings.images_dir.rglob("*.jpg"))
        doctor = Context(settings, embedder=tiny_embedder)  # another process's doctor
        with doctor.sessions() as session:
            committed = set(session.scalars(select(Image.sha256)))
        assert set(written) - committed, "nothing was waiting for its commit"
        repair(doctor, examine(doctor))
        assert sorted(p.stem for p in settings.images_dir.rglob("*.jpg")) == written
        assert [p.name for p in settings.downloads_dir.iterdir()], "the run's folder went"
        held.release.set()
        runner.join(timeout=120)
        assert not errors, errors
        with ctx.sessions() as session:
            states = session.scalars(select(Candidate.state)).all()
        assert len(states) == 3 and CandidateState.PENDING not in states
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
