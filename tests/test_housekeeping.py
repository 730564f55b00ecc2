"""The worker's housekeeping jobs: dead runs' download folders, index snapshots, doctor."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from scenery import housekeeping, schedule
from scenery.context import Context
from scenery.doctor import examine, repair
from scenery.importer import Importer, discover
from scenery.models import utcnow


def test_recovery_removes_download_folders_of_runs_no_longer_alive(ctx: Context) -> None:
    claimed = utcnow()
    live = schedule.claim_feeds(
        ctx.sessions, ["EarthPorn"], "new", None, "cli", lease=3600, now=claimed
    )
    dying = schedule.claim_feeds(ctx.sessions, ["pics"], "new", None, "cli", lease=600, now=claimed)
    root = ctx.settings.downloads_dir
    for token in (live.token, dying.token, "never-claimed"):
        (root / token).mkdir(parents=True)
        (root / token / "partial.jpg").write_bytes(b"half a photo")
    # While both leases hold, only the folder no run owns is stray (the doctor agrees).
    assert [p.name for p in examine(ctx).stray_temp_files] == ["never-claimed"]
    expired = claimed + timedelta(seconds=601)  # the second lease is over, the first is not
    dead = housekeeping.dead_downloads(ctx, now=expired)
    assert [p.name for p in dead] == sorted([dying.token, "never-claimed"])
    assert housekeeping.recover_leases(ctx, now=expired) == 1  # the expired run is closed as lost
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
