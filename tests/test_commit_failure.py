"""A commit that fails (a lost connection, "database is locked", a deadlock, a duplicate key)
leaves the index, its snapshot and the files in agreement with the database, in ingest and
in import alike; a rerun then stores everything.

The failure is injected at the database boundary: the session's commit raises once, after the
batch's rows were flushed, as a real database failing at COMMIT would.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError

from ingest.runner import run_ingest
from scenery.config import Settings
from scenery.context import Context
from scenery.doctor import examine, repair
from scenery.embed import OpenClipEmbedder
from scenery.importer import Importer, discover
from scenery.models import Image, ImageStatus
from scenery.models import Post as PostRow
from scenery.storage import ORPHAN_GRACE_SECONDS
from tests.fakes.reddit import FakeReddit
from tests.fakes.reddit_posts import make_post
from tests.helpers import failing_commit

FAILURES: dict[str, Callable[[], Exception]] = {
    "locked": lambda: OperationalError("COMMIT", {}, Exception("database is locked")),
    "duplicate": lambda: IntegrityError("COMMIT", {}, Exception("duplicate key value")),
}


def published_ids(ctx: Context) -> set[int]:
    with ctx.sessions() as session:
        return set(session.scalars(select(Image.id).where(Image.status == ImageStatus.PUBLISHED)))


def image_ids(ctx: Context) -> set[int]:
    with ctx.sessions() as session:
        return set(session.scalars(select(Image.id)))


def assert_agree(ctx: Context, embedder: OpenClipEmbedder) -> None:
    """Index, a snapshot saved now and a fresh process's index hold the published images and
    nothing else; every row has its files."""
    published = published_ids(ctx)
    assert set(ctx.index.index.ids) == published
    ctx.index.save()  # what the next housekeeping save would persist
    fresh = Context(ctx.settings, embedder=embedder)
    try:
        assert set(fresh.index.index.ids) == published
    finally:
        fresh.close()
    findings = examine(ctx)
    assert findings.ok, findings.lines()


def age(root: Path) -> None:
    """Make every file under ``root`` older than the orphan grace period."""
    old = time.time() - ORPHAN_GRACE_SECONDS - 60
    for path in root.rglob("*"):
        if path.is_file():
            os.utime(path, (old, old))


@pytest.mark.parametrize("failure", sorted(FAILURES))
def test_a_failed_ingest_commit_leaves_nothing_behind(
    tmp_path: Path,
    db_url: str,
    photos: list[Path],
    tiny_embedder: OpenClipEmbedder,
    failure: str,
) -> None:
    fake = FakeReddit()
    with fake.running():
        settings = fake.settings(
            tmp_path, database_url=db_url, clip_batch_size=2, nsfw_nudenet=False
        )
        ctx = Context(settings, embedder=tiny_embedder)
        ctx.migrate()
        posts = [
            make_post(f"p{n}", url=fake.add_photo(f"/img/p{n}.jpg", photo))
            for n, photo in enumerate(photos[:6])
        ]
        fake.add_posts("EarthPorn", posts)
        # The second batch's commit fails: the first one's images stay, the second's go.
        with (
            failing_commit(ctx, FAILURES[failure], nth=2) as lost,
            pytest.raises((OperationalError, IntegrityError)),
        ):
            run_ingest(ctx, ["EarthPorn"], limit=50)
        stored = image_ids(ctx)
        assert lost and stored and not set(lost) & stored
        assert not set(lost) & set(ctx.index.index.ids)
        assert_agree(ctx, tiny_embedder)

        run_ingest(ctx, ["EarthPorn"], limit=50)  # the rerun stores the rest
        assert len(image_ids(ctx)) == 6
        assert_agree(ctx, tiny_embedder)
        age(settings.root)
        assert examine(ctx).files_without_rows == []  # every file written has its row now
        ctx.close()


def test_a_failed_import_commit_leaves_nothing_behind(
    settings: Settings, photo_dir: Path, tiny_embedder: OpenClipEmbedder
) -> None:
    ctx = Context(settings.model_copy(update={"clip_batch_size": 3}), embedder=tiny_embedder)
    ctx.migrate()
    files = discover([photo_dir])[:6]
    first = Importer(ctx).run(files[:3])
    assert len(first.imported) == 3
    with failing_commit(ctx, FAILURES["locked"]) as lost, pytest.raises(OperationalError):
        Importer(ctx).run(files[3:])
    assert len(lost) == 3 and not set(lost) & published_ids(ctx)
    assert_agree(ctx, tiny_embedder)
    # The failed batch's files wait, young, for a rerun; once old they are orphans.
    age(ctx.settings.images_dir)
    orphans = examine(ctx).files_without_rows
    assert len(orphans) == 3 and {p.stem for p in orphans}.isdisjoint(
        {i.sha256 for i in _images(ctx)}
    )
    repair(ctx, examine(ctx))
    assert examine(ctx).ok
    again = Importer(ctx).run(files[3:])
    assert len(again.imported) == 3 and len(published_ids(ctx)) == 6
    assert_agree(ctx, tiny_embedder)
    ctx.close()


def _images(ctx: Context) -> list[Image]:
    with ctx.sessions() as session:
        return list(session.scalars(select(Image)))


def test_an_import_batch_refused_as_a_duplicate_falls_back_to_one_row_at_a_time(
    settings: Settings, photo_dir: Path, tiny_embedder: OpenClipEmbedder
) -> None:
    """Another process storing one of the batch's files makes the batch's commit fail on the
    unique hash; the importer then stores the rows one by one and loses none."""
    ctx = Context(settings.model_copy(update={"clip_batch_size": 3}), embedder=tiny_embedder)
    ctx.migrate()
    files = discover([photo_dir])[:3]
    with failing_commit(ctx, FAILURES["duplicate"]) as lost:
        report = Importer(ctx).run(files)
    assert len(lost) == 3  # the whole batch was refused once
    assert sorted(p for p, _ in report.imported) == sorted(files) and not report.duplicates
    assert len(image_ids(ctx)) == 3
    assert_agree(ctx, tiny_embedder)
    ctx.close()


def test_posts_refused_as_duplicates_are_recorded_on_the_next_try(
    tmp_path: Path, db_url: str, photos: list[Path], tiny_embedder: OpenClipEmbedder
) -> None:
    """A concurrent run of another feed recording the same post makes the commit of the posts
    fail on the unique fullname; the run records them again and goes on."""
    fake = FakeReddit()
    with fake.running():
        settings = fake.settings(tmp_path, database_url=db_url, nsfw_nudenet=False)
        ctx = Context(settings, embedder=tiny_embedder)
        ctx.migrate()
        url = fake.add_photo("/img/p0.jpg", photos[0])
        fake.add_posts("EarthPorn", [make_post("p0", url=url)])
        with failing_commit(ctx, FAILURES["duplicate"], watch=PostRow) as lost:
            summary = run_ingest(ctx, ["EarthPorn"], limit=50)
        assert len(lost) == 1 and summary.images_found == 1
        assert len(image_ids(ctx)) == 1
        ctx.close()
