"""`scenery ingest` as a real process: killed with SIGKILL mid-run, then run again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from scenery.context import Context
from scenery.doctor import examine
from scenery.embed import OpenClipEmbedder
from scenery.models import Candidate, CandidateState, ImageStatus
from scenery.models import Image as ImageRow
from scenery.storage import ORPHAN_GRACE_SECONDS
from tests.fakes.reddit import FakeReddit
from tests.fakes.reddit_posts import make_post

# Where ONNX exports are cached: passed on, so a child process does not export the model again.
ONNX_CACHE = "SCENERY_ONNX_DIR"

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def env_for(fake: FakeReddit, data_dir: Path, db_url: str) -> dict[str, str]:
    base = fake.url("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCENERY_") or k == ONNX_CACHE}
    env.update(
        SCENERY_DATA_DIR=str(data_dir),
        SCENERY_DATABASE_URL=db_url,
        SCENERY_CLIP_MODEL="tiny-test",
        SCENERY_CLIP_BATCH_SIZE="2",
        SCENERY_DOWNLOAD_CONCURRENCY="1",
        SCENERY_REDDIT_BASE_URL=base,
        SCENERY_REDDIT_REQUEST_INTERVAL="0",
        SCENERY_ALLOW_PRIVATE_URLS="1",
        SCENERY_CLIP_DUPLICATE_SIMILARITY="0.9999",
        SCENERY_CLIP_DUPLICATE_BORDERLINE="0.9998",
        # as FakeReddit.settings: no cold-start queueing, no tiny-model NSFW noise
        SCENERY_GALLERY_FIT="0",
        SCENERY_NSFW_CLIP="0",
    )
    return env


def published(ctx: Context) -> int:
    with ctx.sessions() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(ImageRow)
                .where(ImageRow.status == ImageStatus.PUBLISHED)
            )
            or 0
        )


def test_sigkill_mid_run_then_rerun_leaves_everything_consistent(
    tmp_path: Path, db_url: str, photos: list[Path], tiny_embedder: OpenClipEmbedder
) -> None:
    fake = FakeReddit()
    with fake.running():
        posts = [
            make_post(f"p{n}", url=fake.add_photo(f"/img/p{n}.jpg", photo))
            for n, photo in enumerate(photos)
        ]
        fake.add_posts("EarthPorn", posts)
        # Slow (but correct) downloads from the sixth image on, so the kill lands mid-run.
        for n in range(5, 10):
            fake.fail(
                f"/img/p{n}.jpg",
                status=200,
                delay=1.5,
                times=None,
                body=photos[n].read_bytes(),
                content_type="image/jpeg",
            )
        settings = fake.settings(tmp_path, database_url=db_url)
        ctx = Context(settings, embedder=tiny_embedder)
        ctx.migrate()
        env = env_for(fake, settings.data_dir, db_url)
        command = [str(BIN / "scenery"), "ingest", "--subreddit", "EarthPorn", "--limit", "50"]
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 90
        while published(ctx) < 2 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.1)
        assert process.poll() is None, process.communicate()
        process.send_signal(signal.SIGKILL)
        process.wait()
        killed_at = published(ctx)
        assert 2 <= killed_at < 15

        fake.faults.clear()
        rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stderr
        assert "ingest summary" in rerun.stdout
        with ctx.sessions() as session:
            states = session.execute(select(Candidate.state, Candidate.reason)).all()
        assert published(ctx) == 15, (states, rerun.stdout)
        with ctx.sessions() as session:
            states = session.scalars(select(Candidate.state)).all()
        assert sorted(states) == [CandidateState.PUBLISHED] * 15
        ctx.index.refresh(force=True)
        findings = examine(ctx)
        assert findings.ok, findings.lines()
        doctor = subprocess.run(
            [str(BIN / "scenery"), "doctor"], env=env, capture_output=True, text=True, timeout=120
        )
        assert doctor.returncode == 0 and "agree" in doctor.stdout
        ctx.close()


def test_doctor_reports_and_repairs_inconsistencies(
    tmp_path: Path, db_url: str, photo_dir: Path, tiny_embedder: OpenClipEmbedder
) -> None:
    from scenery.config import Settings
    from scenery.db import transaction
    from scenery.doctor import repair
    from scenery.importer import Importer, discover

    settings = Settings(data_dir=tmp_path / "d", database_url=db_url, clip_model="tiny-test")
    ctx = Context(settings, embedder=tiny_embedder)
    ctx.migrate()
    report = Importer(ctx).run(discover([photo_dir]))
    ids = [i for _, i in report.imported]
    orphan = settings.images_dir / "ab" / "cd" / ("ab" * 32 + ".jpg")
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"x")
    old = time.time() - ORPHAN_GRACE_SECONDS - 1  # young files may be about to get their row
    os.utime(orphan, (old, old))
    with transaction(ctx.sessions) as session:
        lost = session.get(ImageRow, ids[0])
        assert lost is not None
        (settings.root / lost.path).unlink()
    ctx.index.remove([ids[1]])  # as if the index had missed an event
    findings = examine(ctx)
    assert findings.rows_without_files == [ids[0]]
    assert findings.files_without_rows == [orphan]
    assert findings.published_not_indexed == [ids[1]]
    repair(ctx, findings)
    after = examine(ctx)
    assert after.files_without_rows == [] and after.published_not_indexed == []
    assert after.rows_without_files == [ids[0]]  # a lost original cannot be conjured back
    ctx.close()
