"""Backups that restore: written while an ingest runs, restored into a fresh data dir and
database (SQLite and PostgreSQL), checked by the doctor and against the gallery as it was."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from click.testing import CliRunner
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.engine import make_url

from scenery import housekeeping, review
from scenery.backup import write_backup
from scenery.backup_manifest import BackupError, Manifest, complete_backups
from scenery.cli import main
from scenery.config import GRID_THUMB, Settings
from scenery.context import Context
from scenery.curation.artifacts import load_latest, save_artifact
from scenery.db import alembic_config, transaction
from scenery.doctor import examine
from scenery.embed import OpenClipEmbedder
from scenery.importer import Importer
from scenery.models import Image, ImageStatus, utcnow
from scenery.restore import restore_backup, verify_backup
from scenery.search import search_text
from tests.fakes.reddit import FakeReddit
from tests.helpers import ingest_held_at_fourth_photo
from tests.live import wait_for

SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
QUERIES = ("a lake below mountains", "a desert at dusk")


@dataclass(frozen=True)
class Gallery:
    """What a gallery holds, in terms that must survive a backup and restore."""

    rows: list[tuple[Any, ...]]
    files: dict[str, str]  # path under the data dir -> SHA-256, of every live row's files
    searches: dict[str, list[tuple[int, float]]]


def gallery(ctx: Context) -> Gallery:
    ctx.index.refresh(force=True)
    with ctx.sessions() as session:
        images = session.scalars(select(Image).order_by(Image.id)).all()
        rows = [
            (i.id, i.sha256, i.path, str(i.status), i.purged_at is None, i.display_title)
            for i in images
        ]
        files = {}
        for image in images:
            if image.purged_at is None:
                for path in (
                    ctx.settings.root / image.path,
                    ctx.storage.thumb_path(image.sha256, GRID_THUMB),
                ):
                    relative = path.relative_to(ctx.settings.root).as_posix()
                    files[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
        searches = {
            query: [
                (hit.image.id, round(hit.score, 5))
                for hit in search_text(session, ctx.index, ctx.text_queries, query, 10, 64)
            ]
            for query in QUERIES
        }
    return Gallery(rows, files, searches)


def reddit_images(ctx: Context) -> int:
    with ctx.sessions() as session:
        return len(session.scalars(select(Image.id).where(Image.source == "reddit")).all())


def stored_files(settings: Settings) -> list[str]:
    return sorted(
        p.relative_to(settings.root).as_posix()
        for folder in (settings.images_dir, settings.thumbs_dir)
        for p in folder.rglob("*")
        if p.is_file()
    )


@pytest.fixture(scope="module")
def restore_db(request: pytest.FixtureRequest) -> Iterator[str]:
    """A PostgreSQL database to restore into, one for the module: each test restores into the
    schema its own source uses (a fresh name each time), which this database does not have."""
    admin_url = request.getfixturevalue("pg_admin_url")
    with fresh_database(admin_url, admin_url) as url:
        yield url


@pytest.fixture
def target(request: pytest.FixtureRequest, db_url: str, tmp_path: Path) -> Iterator[Settings]:
    """Settings of a fresh place to restore into: a new data dir with its own SQLite file, or
    another PostgreSQL database whose search path names the source's schema."""
    values: dict[str, Any] = {
        "data_dir": tmp_path / "restored",
        "clip_model": "tiny-test",
        "index_refresh_seconds": 0,
        "warm_up": False,
    }
    if db_url.startswith("sqlite"):
        yield Settings(**values)
        return
    source = make_url(db_url)
    url = make_url(request.getfixturevalue("restore_db")).set(query=source.query)
    yield Settings(**values, database_url=url.render_as_string(hide_password=False))
    schema = str(source.query["options"]).removeprefix("-csearch_path=")
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


@pytest.fixture
def small(ctx: Context, photos: list[Path]) -> Context:
    """A gallery of three published and one queued image, and a trained model."""
    assert not Importer(ctx).run(photos[:3]).failed
    assert not Importer(ctx, publish=False).run(photos[3:4]).failed
    save_artifact(ctx.settings, "test-kind", {"weights": [1.0, 2.0]}, {"note": "kept"})
    return ctx


@contextmanager
def fresh_database(admin_url: str, like: str) -> Iterator[str]:
    """A new PostgreSQL database for the test, dropped afterwards; its URL keeps the query
    (search path) of ``like``."""
    name = f"t_restore_{uuid.uuid4().hex[:10]}"
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(like).set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        engine.dispose()


# -- the acceptance test ----------------------------------------------------------------------


def test_a_backup_during_an_ingest_restores_the_gallery_as_of_the_backup(
    tmp_path: Path,
    db_url: str,
    photos: list[Path],
    tiny_embedder: OpenClipEmbedder,
    target: Settings,
) -> None:
    fake = FakeReddit()
    with fake.running():
        settings = fake.settings(
            tmp_path,
            database_url=db_url,
            clip_batch_size=1,
            download_concurrency=1,
            download_read_timeout=120.0,  # the held download waits for the test, not a timer
            nsfw_nudenet=False,
        )
        ctx = Context(settings, embedder=tiny_embedder)
        ctx.migrate()
        assert not Importer(ctx).run(photos[5:11]).failed
        assert not Importer(ctx, publish=False).run(photos[11:13]).failed
        with ctx.sessions() as session:
            doomed = session.scalars(select(Image.id).order_by(Image.id).limit(1)).one()
        with transaction(ctx.sessions) as session:
            files = review.delete(session, [doomed], "test")
        review.remove_files(ctx.storage, files)
        save_artifact(settings, "test-kind", {"weights": [1.0, 2.0]}, {"note": "kept"})
        secret = settings.flask_secret()  # generated into the data dir, as a server does
        # The fourth download stalls: the second and third photos' files are written, their
        # rows are not.
        with ingest_held_at_fourth_photo(ctx, fake, photos):
            other = Context(settings, embedder=tiny_embedder)  # another process's backup
            # The first photo's batch commits once the third is prepared; the second's and the
            # third's wait for the held fourth: from then on nothing changes until the release.
            wait_for(lambda: reddit_images(other) == 1, 60, "the first photo's commit")
            before = gallery(other)
            written = {p.stem for p in settings.images_dir.rglob("*.jpg")}
            uncommitted = written - {row[1] for row in before.rows}
            assert uncommitted, "nothing was waiting for its commit"
            report = write_backup(other, tmp_path / "backups")
            assert gallery(other) == before  # the ingest was held: the backup's moment is this
        assert len(gallery(other).rows) > len(before.rows)  # the ingest went on afterwards
        other.close()
        ctx.close()

    assert sorted(report.path.parent.iterdir()) == [report.path]  # no partial left behind
    result = restore_backup(report.path, target, embedder=tiny_embedder)
    assert result.findings.ok, result.findings.lines()
    back = Context(target, embedder=tiny_embedder)
    try:
        assert examine(back).ok
        after = gallery(back)
        assert after.rows == before.rows
        assert ImageStatus.DELETED.value in {row[3] for row in after.rows}
        assert after.files == before.files
        assert after.searches == before.searches and all(after.searches.values())
        assert stored_files(target) == sorted(before.files)  # nothing uncommitted came along
        assert not uncommitted & {Path(p).stem for p in stored_files(target)}
        model = load_latest(target, "test-kind")
        assert model is not None and model.objects == {"weights": [1.0, 2.0]}
        assert (target.root / "secret_key").read_text().strip() == secret
    finally:
        back.close()


# -- refusals ---------------------------------------------------------------------------------


def test_a_damaged_file_is_refused_before_anything_is_restored(
    small: Context, target: Settings, tiny_embedder: OpenClipEmbedder, tmp_path: Path
) -> None:
    report = write_backup(small, tmp_path / "backups")
    manifest = Manifest.read(report.path)
    damaged = next(e for e in manifest.files if e.path.startswith("images/"))
    copy = report.path / "files" / damaged.path
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit, same size
    copy.write_bytes(bytes(data))
    with pytest.raises(BackupError, match=rf"damaged: .*{damaged.sha256}\.jpg has .*nothing was"):
        verify_backup(report.path)
    with pytest.raises(BackupError, match=rf"damaged: .*{damaged.sha256}\.jpg has"):
        restore_backup(report.path, target, embedder=tiny_embedder)
    assert stored_files(target) == [] and not list(target.root.glob(".restore-*"))
    check = Context(target, embedder=tiny_embedder)  # the database was not touched either
    try:
        assert not inspect_tables(check)
    finally:
        check.close()


def inspect_tables(ctx: Context) -> list[str]:
    with ctx.engine.connect() as conn:
        return inspect(conn).get_table_names()


def test_restore_refuses_a_gallery_unless_forced(
    small: Context, target: Settings, tiny_embedder: OpenClipEmbedder, tmp_path: Path
) -> None:
    first = write_backup(small, tmp_path / "backups")
    restore_backup(first.path, target, embedder=tiny_embedder)
    with transaction(small.sessions) as session:
        files = review.delete(session, [1], "test")
    review.remove_files(small.storage, files)
    second = write_backup(small, tmp_path / "backups", now=utcnow() + timedelta(seconds=5))
    with pytest.raises(BackupError, match=r"target is not empty .*pass --force"):
        restore_backup(second.path, target, embedder=tiny_embedder)
    result = restore_backup(second.path, target, force=True, embedder=tiny_embedder)
    assert result.findings.ok, result.findings.lines()
    back = Context(target, embedder=tiny_embedder)
    try:
        assert gallery(back) == gallery(small)  # the second backup's gallery, image 1 deleted
        assert stored_files(back.settings) == sorted(gallery(small).files)
    finally:
        back.close()


@SQLITE_ONLY
def test_a_sqlite_backup_is_refused_by_a_postgresql_target(
    small: Context, restore_db: str, tiny_embedder: OpenClipEmbedder, tmp_path: Path
) -> None:
    report = write_backup(small, tmp_path / "backups")
    elsewhere = Settings(data_dir=tmp_path / "elsewhere", database_url=restore_db)
    with pytest.raises(BackupError, match=r"holds a sqlite database .* names a postgresql one"):
        restore_backup(report.path, elsewhere, embedder=tiny_embedder)
    assert not (tmp_path / "elsewhere").exists()


# -- races and old backups --------------------------------------------------------------------


def test_changes_while_the_files_are_copied_leave_a_whole_backup(
    small: Context,
    target: Settings,
    tiny_embedder: OpenClipEmbedder,
    photos: list[Path],
    tmp_path: Path,
) -> None:
    """After the snapshot, image 3 is deleted (its files go before they are copied) and a new
    photo is imported (its row is not in the snapshot). The restore applies the delete, so no
    row names a file the backup lacks, and leaves the newcomer out, files and all."""
    added: list[int] = []

    def meanwhile(done: int, _total: int) -> None:
        if done == 1:  # the snapshot is taken; image 1's files are copied, 3's are not yet
            with transaction(small.sessions) as session:
                files = review.delete(session, [3], "test")
            review.remove_files(small.storage, files)
            added.extend(image_id for _, image_id in Importer(small).run(photos[4:5]).imported)

    report = write_backup(small, tmp_path / "backups", on_progress=meanwhile)
    assert report.vanished == [3] and report.images == {"published": 3, "queued": 1}
    result = restore_backup(report.path, target, embedder=tiny_embedder)
    assert result.findings.ok, result.findings.lines()
    back = Context(target, embedder=tiny_embedder)
    try:
        live, restored = gallery(small), gallery(back)
        (newcomer,) = added
        assert restored.rows == [row for row in live.rows if row[0] != newcomer]
        new_sha = next(row[1] for row in live.rows if row[0] == newcomer)
        assert restored.files == {p: h for p, h in live.files.items() if new_sha not in p}
        assert {row[0]: row[3] for row in restored.rows}[3] == ImageStatus.DELETED.value
        assert newcomer not in {hit for hits in restored.searches.values() for hit, _ in hits}
    finally:
        back.close()


@SQLITE_ONLY
def test_a_backup_of_an_older_schema_is_migrated(
    small: Context, target: Settings, tiny_embedder: OpenClipEmbedder, tmp_path: Path
) -> None:
    command.downgrade(alembic_config(small.engine), "0006")  # as an older Scenery left it
    report = write_backup(small, tmp_path / "backups")
    result = restore_backup(report.path, target, embedder=tiny_embedder)
    assert result.revision == "0006" and result.findings.ok, result.findings.lines()
    back = Context(target, embedder=tiny_embedder)
    try:
        with back.engine.connect() as conn:
            revision = conn.scalar(text("SELECT version_num FROM alembic_version"))
        assert revision != "0006" and revision == head_revision(back)
        small.migrate()  # the source as the newer Scenery reads it
        assert gallery(back).rows == gallery(small).rows
    finally:
        back.close()


def head_revision(ctx: Context) -> str:
    head = ScriptDirectory.from_config(alembic_config(ctx.engine)).get_current_head()
    assert head is not None
    return head


def test_a_public_schema_restores_into_a_new_database(
    pg_admin_url: str,
    restore_db: str,
    photos: list[Path],
    tiny_embedder: OpenClipEmbedder,
    tmp_path: Path,
) -> None:
    """Production keeps the gallery in ``public``, which every new database has already."""
    with fresh_database(pg_admin_url, pg_admin_url) as source_url:
        source = Context(
            Settings(data_dir=tmp_path / "a", database_url=source_url, clip_model="tiny-test"),
            embedder=tiny_embedder,
        )
        source.migrate()
        assert not Importer(source).run(photos[:2]).failed
        report = write_backup(source, tmp_path / "backups")
        assert Manifest.read(report.path).database.schema == "public"
        target = Settings(data_dir=tmp_path / "b", database_url=restore_db, clip_model="tiny-test")
        result = restore_backup(report.path, target, embedder=tiny_embedder)
        assert result.findings.ok, result.findings.lines()
        back = Context(target, embedder=tiny_embedder)
        assert gallery(back) == gallery(source)
        back.close()
        source.close()


# -- the periodic backup ------------------------------------------------------------------------


def partial(folder: Path, token: str, touched: datetime) -> Path:
    """A partial backup's folder, last touched at ``touched``."""
    path = folder / f".scenery-{touched:%Y%m%dT%H%M%SZ}.{token}.partial"
    path.mkdir(parents=True, exist_ok=True)
    os.utime(path, (touched.timestamp(), touched.timestamp()))
    return path


@SQLITE_ONLY
def test_the_periodic_backup_runs_when_due_and_keeps_the_newest(
    settings: Settings, tiny_embedder: OpenClipEmbedder, photos: list[Path], tmp_path: Path
) -> None:
    folder = tmp_path / "backups"
    ctx = Context(
        settings.model_copy(
            update={"backup_dir": folder, "backup_keep": 3, "backup_interval_hours": 24}
        ),
        embedder=tiny_embedder,
    )
    ctx.migrate()
    try:
        assert not Importer(ctx).run(photos[:2]).failed
        start = utcnow().replace(microsecond=0)
        # Left by a killed worker: untouched for an hour (a backup under way touches its
        # folder every minute). It holds nothing back, and goes.
        abandoned = partial(folder, "0a1b", touched=start - timedelta(hours=1))
        other = folder / "notes.txt"  # not ours: never deleted
        other.write_text("hello")
        made = []
        for hours in (0, 1, 23, 24, 48, 49, 72, 96):
            path = housekeeping.backup(ctx, now=start + timedelta(hours=hours))
            if path is not None:
                made.append(hours)
        assert made == [0, 24, 48, 72, 96]
        names = sorted(p.name for p in folder.iterdir())
        expected = [f"scenery-{start + timedelta(hours=h):%Y%m%dT%H%M%SZ}" for h in (48, 72, 96)]
        assert names == sorted([*expected, "notes.txt"])
        # Originals are shared with the backup before, not copied again.
        newest, before = folder / expected[-1], folder / expected[-2]
        originals = [e.path for e in Manifest.read(newest).files if e.path.startswith("images/")]
        assert len(originals) == 2
        for relpath in originals:
            linked = [os.stat(b / "files" / relpath).st_ino for b in (newest, before)]
            assert linked[0] == linked[1]
        verify_backup(newest)
        assert not abandoned.exists()
        # A backup under way (touched two minutes ago) holds the next one back; once it has
        # not been touched for 11 minutes it was abandoned, and the next one goes ahead.
        later = start + timedelta(hours=120)
        running = partial(folder, "9f9f", touched=later - timedelta(minutes=2))
        assert housekeeping.backup(ctx, now=later) is None
        stale = (later - timedelta(minutes=11)).timestamp()
        os.utime(running, (stale, stale))
        assert housekeeping.backup(ctx, now=later) is not None
        assert not running.exists() and len(complete_backups(folder)) == 3
    finally:
        ctx.close()


@SQLITE_ONLY
def test_without_a_backup_dir_there_is_no_periodic_backup(ctx: Context) -> None:
    assert ctx.settings.backup_dir is None
    assert housekeeping.backup(ctx, now=utcnow()) is None


# -- the command line ---------------------------------------------------------------------------


@SQLITE_ONLY
def test_backup_and_restore_from_the_command_line(
    small: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    monkeypatch.setenv("SCENERY_CLIP_MODEL", "tiny-test")
    monkeypatch.setenv("SCENERY_DATA_DIR", str(small.settings.data_dir))
    monkeypatch.setenv("SCENERY_DATABASE_URL", small.settings.db_url)
    done = runner.invoke(main, ["backup", str(tmp_path / "backups")], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    (path,) = (tmp_path / "backups").iterdir()
    assert f"backup: {path}" in done.output and "3 published, 1 queued" in done.output
    monkeypatch.delenv("SCENERY_DATABASE_URL")
    monkeypatch.setenv("SCENERY_DATA_DIR", str(tmp_path / "restored"))
    done = runner.invoke(main, ["restore", str(path)], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    assert "index rebuilt: 3 images" in done.output and "ok: database, files" in done.output
    done = runner.invoke(main, ["restore", str(path)], catch_exceptions=False)
    assert done.exit_code == 1 and "Error: the target is not empty" in done.output
    assert "Traceback" not in done.output
    done = runner.invoke(main, ["restore", "--check", str(path)], catch_exceptions=False)
    assert done.exit_code == 0 and "ok: 10 files and the database" in done.output
