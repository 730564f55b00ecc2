"""Index catch-up that trusts no clock but its own: late commits below the watermark are found
whatever their timestamps say, a vector held under a reused id is replaced, and a freshly
loaded snapshot counts as checked."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from scenery.config import Settings
from scenery.context import Context
from scenery.db import transaction
from scenery.index_sync import GAP_SECONDS, SyncedIndex
from scenery.library import get_embedding, get_image, set_status
from scenery.models import ImageStatus, PublicationEvent, utcnow
from tests.fakes.embedders import ColourEmbedder
from tests.helpers import PALETTE, import_colours

POSTGRES_ONLY = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def colour_ctx(settings: Settings) -> Iterator[Context]:
    context = Context(settings, embedder=ColourEmbedder())
    context.migrate()
    yield context
    context.close()


def synced(ctx: Context, clock: Clock, refresh_seconds: float = 0.0) -> SyncedIndex:
    """The index another process would open on the same data dir, on an injected clock."""
    return SyncedIndex(
        ctx.settings.index_dir / "fake-colour",
        "fake-colour",
        ctx.embedder.dim,
        ctx.sessions,
        refresh_seconds=refresh_seconds,
        clock=clock,
    ).open()


@POSTGRES_ONLY
def test_a_late_commit_from_a_skewed_clock_is_caught_up(
    colour_ctx: Context, tmp_path: Path
) -> None:
    """Writer A takes an event id, its machine's clock a day behind; writer B takes the next
    id and commits first. The reader sees B's event, then A's, below its watermark."""
    ids = import_colours(
        colour_ctx, tmp_path / "a", {"red": PALETTE["red"], "blue": PALETTE["blue"]}
    )
    reader = synced(colour_ctx, Clock())
    assert set(reader.index.ids) == set(ids.values())
    with colour_ctx.sessions() as slow, slow.begin():
        set_status(slow, get_image(slow, ids["red"]), ImageStatus.QUEUED)
        slow.flush()
        event = slow.scalars(
            select(PublicationEvent)
            .where(PublicationEvent.image_id == ids["red"])
            .order_by(PublicationEvent.id.desc())
        ).first()
        assert event is not None
        event.at = utcnow() - timedelta(days=1)  # stamped by a clock a day behind
        slow.flush()
        with transaction(colour_ctx.sessions) as fast:
            set_status(fast, get_image(fast, ids["blue"]), ImageStatus.QUEUED)
        assert reader.refresh(force=True) == 1  # blue left; red's event is not visible yet
        assert reader.watermark > event.id and event.id in reader.gaps
    # The slow transaction commits now, below the reader's watermark.
    assert reader.refresh(force=True) == 1
    assert ids["red"] not in reader and not reader.gaps


def test_gaps_are_forgotten_after_their_time_on_the_readers_clock(
    colour_ctx: Context, tmp_path: Path
) -> None:
    import_colours(colour_ctx, tmp_path / "a", {"red": PALETTE["red"]})
    clock = Clock()
    reader = synced(colour_ctx, clock)
    reader.gaps = {reader.watermark - 1: clock.now}  # an id a rolled-back transaction took
    reader.refresh(force=True)
    assert reader.gaps  # still waited for
    clock.now += GAP_SECONDS + 1
    reader.refresh(force=True)
    assert not reader.gaps


def test_a_vector_held_under_a_reused_id_is_replaced(colour_ctx: Context, tmp_path: Path) -> None:
    """On SQLite a rolled-back image's id goes to the next image: a process that kept the old
    vector under that id must take the stored one when the id's event comes."""
    ids = import_colours(colour_ctx, tmp_path / "a", {"red": PALETTE["red"]})
    reader = synced(colour_ctx, Clock())
    blue = np.zeros((1, colour_ctx.embedder.dim), np.float32)
    blue[0, 2] = 1.0
    reader.add([ids["red"]], blue)  # the vector of an image that never committed
    for status in (ImageStatus.QUEUED, ImageStatus.PUBLISHED):
        with transaction(colour_ctx.sessions) as session:
            set_status(session, get_image(session, ids["red"], published_only=False), status)
    reader.refresh(force=True)
    with colour_ctx.sessions() as session:
        stored = get_embedding(session, ids["red"], "fake-colour")
    held = reader.index.get_vectors([ids["red"]])[0]
    assert np.allclose(held, stored, atol=1e-5) and not np.allclose(held, blue[0])


def test_a_loaded_snapshot_waits_its_interval_before_catching_up(
    colour_ctx: Context, tmp_path: Path
) -> None:
    import_colours(colour_ctx, tmp_path / "a", {"red": PALETTE["red"]})  # saves a snapshot
    clock = Clock()
    server = synced(colour_ctx, clock, refresh_seconds=10)
    assert len(server) == 1
    import_colours(colour_ctx, tmp_path / "b", {"blue": PALETTE["blue"]})
    clock.now += 9
    assert server.refresh() == 0 and len(server) == 1  # checked on loading, 9 s ago
    clock.now += 1
    assert server.refresh() == 1 and len(server) == 2
