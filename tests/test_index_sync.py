"""The persisted index follows the database, also when other processes change it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from scenery.config import Settings
from scenery.context import Context
from scenery.db import transaction
from scenery.library import get_image, set_status
from scenery.models import ImageStatus
from tests.fakes.embedders import ColourEmbedder
from tests.helpers import PALETTE, import_colours


@pytest.fixture
def colour_ctx(settings: Settings) -> Iterator[Context]:
    context = Context(settings, embedder=ColourEmbedder())
    context.migrate()
    yield context
    context.close()


def other_process(settings: Settings) -> Context:
    """A second Context on the same database and data dir, as another process would have."""
    return Context(settings, embedder=ColourEmbedder())


def change_status(ctx: Context, image_id: int, status: ImageStatus) -> None:
    with transaction(ctx.sessions) as session:
        set_status(session, get_image(session, image_id, published_only=False), status)


def test_new_process_rebuilds_from_the_database(colour_ctx: Context, tmp_path: Path) -> None:
    ids = import_colours(colour_ctx, tmp_path / "in", PALETTE)
    # The import saved a snapshot; hide it so that the new process must rebuild.
    for path in colour_ctx.settings.index_dir.rglob("CURRENT"):
        path.unlink()
    fresh = other_process(colour_ctx.settings)
    assert fresh.index.index.ids == frozenset(ids.values())
    fresh.close()


def test_snapshot_is_loaded_then_caught_up(colour_ctx: Context, tmp_path: Path) -> None:
    ids = import_colours(colour_ctx, tmp_path / "a", {"red": PALETTE["red"]})
    snapshot_watermark = colour_ctx.index.watermark
    later = import_colours(colour_ctx, tmp_path / "b", {"blue": PALETTE["blue"]})
    # The second import saved again; roll CURRENT back to a snapshot without "blue".
    current = colour_ctx.settings.index_dir / "fake-colour" / "CURRENT"
    snapshots = sorted(p for p in current.parent.glob("snap-*"))
    older = next(
        s
        for s in snapshots
        if json.loads((s / "meta.json").read_text())["watermark"] == snapshot_watermark
    )
    current.write_text(older.name)
    fresh = other_process(colour_ctx.settings)
    assert fresh.index.watermark > snapshot_watermark  # replayed the newer events
    assert set(fresh.index.index.ids) == {ids["red"], later["blue"]}
    fresh.close()


def test_running_process_picks_up_other_process_changes(
    colour_ctx: Context, tmp_path: Path
) -> None:
    ids = import_colours(colour_ctx, tmp_path / "a", {"red": PALETTE["red"]})
    server = other_process(colour_ctx.settings)
    assert set(server.index.index.ids) == {ids["red"]}
    more = import_colours(colour_ctx, tmp_path / "b", {"green": PALETTE["green"]})
    change_status(colour_ctx, ids["red"], ImageStatus.DELETED)
    assert server.index.refresh() == 2
    assert set(server.index.index.ids) == {more["green"]}
    server.close()


def test_refresh_waits_for_its_interval(colour_ctx: Context, tmp_path: Path) -> None:
    server = Context(
        colour_ctx.settings.model_copy(update={"index_refresh_seconds": 3600}), ColourEmbedder()
    )
    assert len(server.index) == 0
    import_colours(colour_ctx, tmp_path / "a", {"red": PALETTE["red"]})
    assert server.index.refresh() == 0 and len(server.index) == 0
    assert server.index.refresh(force=True) == 1
    server.close()


def test_unpublished_images_leave_and_republished_return(
    colour_ctx: Context, tmp_path: Path
) -> None:
    ids = import_colours(colour_ctx, tmp_path / "a", PALETTE)
    change_status(colour_ctx, ids["blue"], ImageStatus.QUEUED)
    colour_ctx.index.refresh(force=True)
    assert ids["blue"] not in colour_ctx.index
    change_status(colour_ctx, ids["blue"], ImageStatus.PUBLISHED)
    colour_ctx.index.refresh(force=True)
    assert ids["blue"] in colour_ctx.index


def test_snapshot_ahead_of_the_database_is_rebuilt(colour_ctx: Context, tmp_path: Path) -> None:
    import_colours(colour_ctx, tmp_path / "a", PALETTE)
    current = colour_ctx.settings.index_dir / "fake-colour" / "CURRENT"
    meta_path = current.parent / current.read_text() / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["watermark"] += 10_000  # a snapshot from some other database
    meta_path.write_text(json.dumps(meta))
    fresh = other_process(colour_ctx.settings)
    assert fresh.index.watermark < meta["watermark"]
    assert len(fresh.index) == len(PALETTE)
    fresh.close()


def test_corrupt_snapshot_is_rebuilt(colour_ctx: Context, tmp_path: Path) -> None:
    import_colours(colour_ctx, tmp_path / "a", PALETTE)
    current = colour_ctx.settings.index_dir / "fake-colour" / "CURRENT"
    (current.parent / current.read_text() / "hnsw.bin").write_bytes(b"garbage")
    fresh = other_process(colour_ctx.settings)
    assert len(fresh.index) == len(PALETTE)
    fresh.close()


def test_old_snapshots_are_pruned(
    colour_ctx: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("scenery.index_sync.PRUNE_GRACE_SECONDS", 0.0)
    for n in range(4):
        import_colours(colour_ctx, tmp_path / str(n), {f"c{n}": (n * 60, 10, 10)})
    snapshots = list((colour_ctx.settings.index_dir / "fake-colour").glob("snap-*"))
    assert len(snapshots) == 2


def test_fresh_snapshots_of_other_processes_survive_pruning(
    colour_ctx: Context, tmp_path: Path
) -> None:
    for n in range(4):
        import_colours(colour_ctx, tmp_path / str(n), {f"c{n}": (n * 60, 10, 10)})
    snapshots = list((colour_ctx.settings.index_dir / "fake-colour").glob("snap-*"))
    assert len(snapshots) == 4
