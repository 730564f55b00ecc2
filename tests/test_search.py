"""Search ranks published images by similarity and never shows unpublished ones."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from scenery.config import Settings
from scenery.context import Context
from scenery.db import transaction
from scenery.embed import OpenClipEmbedder
from scenery.errors import NotFound
from scenery.importer import Importer
from scenery.library import get_embedding, get_image, set_status
from scenery.models import ImageStatus
from scenery.search import search_image, search_text, similar_images
from tests.fakes.embedders import ColourEmbedder, solid
from tests.helpers import PALETTE, import_colours


@pytest.fixture
def gallery(settings: Settings, tmp_path: Path) -> Iterator[tuple[Context, dict[str, int]]]:
    context = Context(settings, embedder=ColourEmbedder())
    context.migrate()
    yield context, import_colours(context, tmp_path / "colours", PALETTE)
    context.close()


def test_text_search_ranks_the_named_colour_first(gallery: tuple[Context, dict[str, int]]) -> None:
    ctx, ids = gallery
    with ctx.sessions() as session:
        hits = search_text(session, ctx.index, ctx.text_queries, "something red", k=4, ef=64)
    assert hits[0].image.id == ids["red"]
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert len(hits) == 4


def test_image_search_finds_the_same_picture_first(gallery: tuple[Context, dict[str, int]]) -> None:
    ctx, ids = gallery
    with ctx.sessions() as session:
        hits = search_image(session, ctx.index, ctx.embedder, solid((25, 190, 35)), k=2, ef=64)
    assert hits[0].image.id == ids["green"]
    assert hits[0].score == pytest.approx(1.0, abs=1e-3)


def test_similar_excludes_the_image_itself(gallery: tuple[Context, dict[str, int]]) -> None:
    ctx, ids = gallery
    with ctx.sessions() as session:
        hits = similar_images(session, ctx.index, ids["yellow"], k=10, ef=64)
    assert ids["yellow"] not in [h.image.id for h in hits]
    assert len(hits) == 3
    # yellow = red + green: its nearest neighbours are those two, not blue
    assert {h.image.id for h in hits[:2]} == {ids["red"], ids["green"]}


def test_similar_of_unpublished_image_is_not_found(gallery: tuple[Context, dict[str, int]]) -> None:
    ctx, ids = gallery
    with transaction(ctx.sessions) as session:
        set_status(session, get_image(session, ids["red"]), ImageStatus.REJECTED)
    with ctx.sessions() as session, pytest.raises(NotFound):
        similar_images(session, ctx.index, ids["red"], k=3, ef=64)


def test_unpublished_image_vanishes_even_before_the_index_refreshes(
    gallery: tuple[Context, dict[str, int]], settings: Settings
) -> None:
    ctx, ids = gallery
    # A server whose index refreshes only hourly still must not show a deleted image.
    server = Context(settings.model_copy(update={"index_refresh_seconds": 3600}), ColourEmbedder())
    assert len(server.index) == 4
    with transaction(ctx.sessions) as session:
        set_status(session, get_image(session, ids["red"]), ImageStatus.DELETED)
    with server.sessions() as session:
        hits = search_text(session, server.index, server.text_queries, "red", k=4, ef=64)
    assert ids["red"] not in [h.image.id for h in hits]
    assert len(hits) == 3
    # The index has not caught up (its snapshot was loaded just now): the database dropped it.
    assert ids["red"] in server.index
    server.close()


def test_text_search_ranks_exactly_and_its_shift_survives_snapshots_and_rebuilds(
    settings: Settings,
    tiny_embedder: OpenClipEmbedder,
    photos: list[Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The graph is steered across the modality gap; scores stay the query's own cosine."""
    ctx = Context(settings, embedder=tiny_embedder)
    ctx.migrate()
    Importer(ctx).run(photos)
    query = "a mountain lake at dawn"
    with ctx.sessions() as session:
        hits = search_text(session, ctx.index, ctx.text_queries, query, k=10, ef=64)
        stored = {
            image_id: get_embedding(session, image_id, tiny_embedder.name)
            for image_id in ctx.index.index.ids
        }
    vector = tiny_embedder.encode_text([query])[0]
    exact = sorted(stored, key=lambda i: -float(stored[i] @ vector))[:10]
    assert [h.image.id for h in hits] == exact
    for hit in hits:
        assert hit.score == pytest.approx(float(stored[hit.image.id] @ vector), abs=1e-5)
    assert ctx.index.index.same_shift(ctx.text_queries.shift)
    ctx.index.save()
    ctx.close()

    again = Context(settings, embedder=tiny_embedder)
    with caplog.at_level(logging.INFO, logger="scenery.index_sync"):
        with again.sessions() as session:
            reloaded = search_text(session, again.index, again.text_queries, query, 10, 64)
        assert "registering" not in caplog.text  # the snapshot kept the shift and its dots
        again.index.rebuild()
        assert again.index.index.same_shift(again.text_queries.shift)
        with again.sessions() as session:
            rebuilt = search_text(session, again.index, again.text_queries, query, 10, 64)
    assert "registering" not in caplog.text
    assert [h.image.id for h in reloaded] == [h.image.id for h in rebuilt] == exact
    again.close()
