"""The worker's housekeeping jobs: dead runs' download folders, index snapshots, doctor."""

from __future__ import annotations

import time
from pathlib import Path

from scenery import housekeeping, schedule
from scenery.context import Context
from scenery.doctor import examine, repair
from scenery.importer import Importer, discover


def test_recovery_removes_download_folders_of_runs_no_longer_alive(ctx: Context) -> None:
    live = schedule.claim_feeds(ctx.sessions, ["EarthPorn"], "new", None, "cli", lease=60)
    dead = schedule.claim_feeds(ctx.sessions, ["pics"], "new", None, "cli", lease=0.1)
    root = ctx.settings.downloads_dir
    for token in (live.token, dead.token, "never-claimed"):
        (root / token).mkdir(parents=True)
        (root / token / "partial.jpg").write_bytes(b"half a photo")
    time.sleep(0.3)
    assert [p.name for p in examine(ctx).stray_temp_files] == sorted([dead.token, "never-claimed"])
    assert housekeeping.recover_leases(ctx) == 1  # the expired run is closed as lost
    assert sorted(p.name for p in root.iterdir()) == [live.token]
    assert (root / live.token / "partial.jpg").is_file()


def test_doctor_fix_removes_a_dead_runs_folder(ctx: Context) -> None:
    folder = ctx.settings.downloads_dir / "0123abcd"
    folder.mkdir(parents=True)
    (folder / "x.part").write_bytes(b"x")
    findings = examine(ctx)
    assert findings.stray_temp_files == [folder]
    repair(ctx, findings)
    assert not folder.exists() and examine(ctx).ok


def test_snapshot_is_saved_only_when_the_index_changed(ctx: Context, photo_dir: Path) -> None:
    assert housekeeping.save_index(ctx)  # the first save: nothing was saved by this process
    assert not housekeeping.save_index(ctx)
    Importer(ctx).run(discover([photo_dir])[:2])
    assert housekeeping.save_index(ctx)
    current = (ctx.settings.index_dir / "tiny-test" / "CURRENT").read_text()
    assert not housekeeping.save_index(ctx)
    assert (ctx.settings.index_dir / "tiny-test" / "CURRENT").read_text() == current
