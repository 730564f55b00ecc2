"""The scenery command, run in-process through click's test runner."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from scenery.cli import main
from scenery.config import Settings
from scenery.context import Context
from scenery.models import Image, ImageStatus
from tests import badfiles


@pytest.fixture
def run(settings: Settings, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SCENERY_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("SCENERY_DATABASE_URL", settings.db_url)
    monkeypatch.setenv("SCENERY_CLIP_MODEL", "tiny-test")
    runner = CliRunner()

    def invoke(*args: str) -> tuple[int, str]:
        result = runner.invoke(main, list(args), catch_exceptions=False)
        return result.exit_code, result.output

    return invoke


def statuses(settings: Settings) -> dict[int, ImageStatus]:
    ctx = Context(settings)
    with ctx.sessions() as session:
        rows = {row[0]: row[1] for row in session.execute(select(Image.id, Image.status))}
    ctx.close()
    return rows


def test_init_creates_the_data_dir_and_schema(run, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    code, output = run("init")
    assert code == 0 and str(settings.root) in output
    assert (settings.root / "images").is_dir()


def test_import_twice_then_bad_files_are_reported(run, photo_dir: Path) -> None:  # type: ignore[no-untyped-def]
    code, output = run("import", str(photo_dir))
    assert code == 0
    assert re.search(r"imported 15, duplicates 0, failed 0 \(15 files", output)
    code, output = run("import", str(photo_dir))
    assert code == 0 and "imported 0, duplicates 15, failed 0" in output
    bad = badfiles.write_bad_files(photo_dir, photo_dir / "life.jpg")
    code, output = run("import", str(photo_dir))
    assert code == 0 and "imported 0, duplicates 15, failed 4" in output
    for path in bad.values():
        assert f"failed: {path}:" in output
    assert "decompression bomb guard" in output and "not an image" in output


def test_no_publish_then_publish_unpublish_delete(run, photo_dir: Path, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    code, output = run("import", "--no-publish", str(photo_dir / "flow.jpg"))
    assert code == 0 and "queued 1" in output
    [image_id] = statuses(settings)
    assert statuses(settings)[image_id] == ImageStatus.QUEUED
    assert run("publish", str(image_id))[0] == 0
    assert statuses(settings)[image_id] == ImageStatus.PUBLISHED
    assert run("unpublish", str(image_id))[0] == 0
    assert statuses(settings)[image_id] == ImageStatus.QUEUED
    assert list((settings.root / "images").rglob("*.jpg"))
    assert run("delete", str(image_id))[0] == 0
    assert statuses(settings)[image_id] == ImageStatus.DELETED
    assert not list((settings.root / "images").rglob("*.jpg"))  # its files are removed
    code, output = run("publish", str(image_id))
    assert code != 0 and f"image {image_id} was deleted" in output
    code, output = run("publish", "999")
    assert code != 0 and "no image 999" in output and "Traceback" not in output


def test_reindex_rebuilds_from_the_database(run, photo_dir: Path, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    run("import", str(photo_dir))
    index_dir = settings.index_dir / "tiny-test"
    for snapshot in index_dir.glob("snap-*"):
        for f in snapshot.iterdir():
            f.unlink()
        snapshot.rmdir()
    code, output = run("reindex")
    assert code == 0 and "indexed 15 images" in output
    assert (index_dir / "CURRENT").exists()


def test_bad_settings_are_a_clean_error(run, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SCENERY_CLIP_DEVICE", "abacus")
    code, output = run("init")
    assert code != 0 and "clip_device" in output and "Traceback" not in output
