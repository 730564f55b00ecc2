"""Posts whose image host failed, or whose API key was missing, are resolved again later.

A short imgur or flickr outage must not lose a post for good: after the resolver's own retries
the post is stored as ``failed`` with a time to try again (backing off), and a later run
resolves it, listed or not. A post that waited for a missing key resolves once the key is set.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from ingest.runner import run_ingest
from scenery.config import Settings
from scenery.context import Context
from scenery.db import transaction
from scenery.embed import OpenClipEmbedder
from scenery.models import Candidate, CandidateState, PostOutcome, as_utc
from scenery.models import Post as PostRow
from tests.fakes.reddit import FakeReddit, imgur_image
from tests.fakes.reddit_posts import make_post

ALBUM = "/3/album/Alb12/images"


@dataclass
class Outage:
    fake: FakeReddit
    tmp_path: Path
    db_url: str
    embedder: OpenClipEmbedder

    def context(self, **overrides: Any) -> Context:
        values: dict[str, Any] = {
            "database_url": self.db_url,
            "imgur_client_id": "fake-imgur-id",
            "resolve_retry_seconds": 0,
            "nsfw_nudenet": False,
        }
        values.update(overrides)
        settings: Settings = self.fake.settings(self.tmp_path, **values)
        ctx = Context(settings, embedder=self.embedder)
        ctx.migrate()
        return ctx

    def ingest(self, **overrides: Any) -> PostRow:
        ctx = self.context(**overrides)
        try:
            run_ingest(ctx, ["EarthPorn"], limit=50)
            with ctx.sessions() as session:
                row = session.scalars(select(PostRow).where(PostRow.fullname == "t3_alb")).one()
                session.expunge(row)
                return row
        finally:
            ctx.close()

    def time_passes(self, hours: float) -> None:
        """Move every stored retry time back, as if ``hours`` had passed."""
        ctx = self.context()
        try:
            with transaction(ctx.sessions) as session:
                for row in session.scalars(select(PostRow).where(PostRow.retry_at.is_not(None))):
                    row.retry_at = as_utc(row.retry_at) - timedelta(hours=hours)
        finally:
            ctx.close()

    def published(self) -> int:
        ctx = self.context()
        try:
            with ctx.sessions() as session:
                states = session.scalars(select(Candidate.state)).all()
            return states.count(CandidateState.PUBLISHED)
        finally:
            ctx.close()


@pytest.fixture
def outage(
    tmp_path: Path, db_url: str, photos: list[Path], tiny_embedder: OpenClipEmbedder
) -> Iterator[Outage]:
    fake = FakeReddit()
    with fake.running():
        link = fake.add_photo("/imgur/Pic01.jpg", photos[0])
        fake.add_album("Alb12", [imgur_image("Pic01", 4000, 3000, link=link)])
        fake.add_posts("EarthPorn", [make_post("alb", url="https://imgur.com/a/Alb12")])
        yield Outage(fake, tmp_path, db_url, tiny_embedder)


def album_requests(fake: FakeReddit) -> int:
    return sum(path == ALBUM for path in fake.paths())


def test_an_imgur_outage_is_retried_by_a_later_run_even_off_the_listing(
    outage: Outage,
) -> None:
    fake = outage.fake
    fake.fail(ALBUM, status=503, times=None)
    first = outage.ingest()
    assert first.outcome == PostOutcome.FAILED and first.resolve_attempts == 1
    assert "HTTP 503" in (first.reason or "") and first.retry_at is not None
    assert album_requests(fake) == 3  # the resolver's own three tries
    # The outage ends; meanwhile the post has dropped off the listing.
    fake.faults.clear()
    fake.posts["earthporn"] = []
    second = outage.ingest()
    assert second.outcome == PostOutcome.DONE and second.retry_at is None
    assert outage.published() == 1


def test_a_failed_post_waits_for_its_backoff_then_gives_up(outage: Outage) -> None:
    fake = outage.fake
    fake.fail(ALBUM, status=503, times=None)
    outage.ingest(resolve_max_attempts=2, resolve_retry_seconds=1800)
    # Not due for half an hour: a run now does not ask imgur again.
    waiting = outage.ingest(resolve_max_attempts=2)
    assert waiting.outcome == PostOutcome.FAILED and album_requests(fake) == 3
    # Twelve minutes on, still waiting; past its retry time, the second failure is its last.
    outage.time_passes(0.2)
    assert outage.ingest(resolve_max_attempts=2).outcome == PostOutcome.FAILED
    assert album_requests(fake) == 3
    outage.time_passes(0.4)
    last = outage.ingest(resolve_max_attempts=2)
    assert album_requests(fake) == 6
    assert last.outcome == PostOutcome.SKIPPED and last.resolve_attempts == 2
    assert (last.reason or "").endswith("gave up after 2 runs")
    fake.faults.clear()
    assert outage.ingest().outcome == PostOutcome.SKIPPED
    assert album_requests(fake) == 6


def test_an_album_skipped_for_a_missing_key_resolves_once_the_key_is_set(
    outage: Outage,
) -> None:
    fake = outage.fake
    keyless = outage.ingest(imgur_client_id=None)
    assert keyless.outcome == PostOutcome.FAILED and keyless.needs == "imgur_client_id"
    assert "SCENERY_IMGUR_CLIENT_ID" in (keyless.reason or "")
    assert outage.ingest(imgur_client_id=None).outcome == PostOutcome.FAILED
    assert album_requests(fake) == 0
    keyed = outage.ingest(imgur_client_id="fake-imgur-id")
    assert keyed.outcome == PostOutcome.DONE and keyed.needs is None
    assert album_requests(fake) == 1 and outage.published() == 1


def test_a_flickr_page_that_is_gone_is_skipped_for_good(outage: Outage) -> None:
    """Only failures that may pass are retried: an answer that the photo does not exist is
    final."""
    fake = outage.fake
    page = "https://www.flickr.com/photos/someone/99999/"
    fake.add_posts("EarthPorn", [make_post("gone", url=page)])
    ctx = outage.context(flickr_api_key="fake-flickr-key")
    try:
        run_ingest(ctx, ["EarthPorn"], limit=50)
        with ctx.sessions() as session:
            gone = session.scalars(select(PostRow).where(PostRow.fullname == "t3_gone")).one()
        assert gone.outcome == PostOutcome.SKIPPED and gone.retry_at is None
    finally:
        ctx.close()
