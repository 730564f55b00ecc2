"""A download that ran out of time, or failed for another passing reason, is tried again by a
later run after a backoff, never again in the same run: one stalled image host costs a run
one download deadline, not a per-read timeout for each of several tries."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from ingest.runner import run_ingest
from ingest.summary import IngestSummary
from scenery.context import Context
from scenery.db import transaction
from scenery.embed import OpenClipEmbedder
from scenery.models import Candidate, CandidateState, PostOutcome, as_utc, utcnow
from scenery.models import Post as PostRow
from tests.fakes.reddit import FakeReddit, Fault
from tests.fakes.reddit_posts import make_post

DEADLINE = 2.0
BACKOFF = 600.0
STALLED = "/img/stalled.jpg"


@dataclass
class Feed:
    fake: FakeReddit
    ctx: Context
    stalled_photo: bytes

    def run(self) -> IngestSummary:
        return run_ingest(self.ctx, ["EarthPorn"], limit=50)

    def stall(self, **fault: Any) -> Fault:
        """The stalled post's host sends 4 KiB of its photo, then nothing until resumed."""
        return self.fake.fail(
            STALLED,
            status=200,
            body=self.stalled_photo,
            content_type="image/jpeg",
            stall_after=4096,
            **fault,
        )

    def stalled(self) -> tuple[Candidate, PostRow]:
        with self.ctx.sessions() as session:
            candidate = session.scalars(
                select(Candidate).join(Candidate.post).where(PostRow.fullname == "t3_stalled")
            ).one()
            post = candidate.post
            session.expunge_all()
        return candidate, post

    def make_due(self) -> None:
        """Move the stalled candidate's retry time into the past, as if the backoff were over."""
        with transaction(self.ctx.sessions) as session:
            waiting = select(Candidate).where(Candidate.retry_at.is_not(None))
            for candidate in session.scalars(waiting):
                candidate.retry_at = utcnow() - timedelta(seconds=1)

    def requests_for(self, path: str) -> int:
        return self.fake.paths().count(path)


@pytest.fixture
def feed(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    db_url: str,
    photos: list[Path],
    tiny_embedder: OpenClipEmbedder,
) -> Iterator[Feed]:
    """Three good posts and one whose host a test may stall; the download deadline is
    ``DEADLINE`` or the test's indirect parameter."""
    fake = FakeReddit()
    with fake.running():
        settings = fake.settings(
            tmp_path,
            database_url=db_url,
            download_read_timeout=30.0,
            download_total_timeout=getattr(request, "param", DEADLINE),
            download_retry_seconds=BACKOFF,
            nsfw_nudenet=False,
        )
        ctx = Context(settings, embedder=tiny_embedder)
        ctx.migrate()
        posts = [
            make_post(f"good{n}", url=fake.add_photo(f"/img/good{n}.jpg", photo))
            for n, photo in enumerate(photos[:3])
        ]
        posts.insert(1, make_post("stalled", url=fake.add_photo(STALLED, photos[3])))
        fake.add_posts("EarthPorn", posts)
        yield Feed(fake, ctx, photos[3].read_bytes())
        for fault in fake.faults:
            fault.resume.set()  # let held server threads go
        ctx.close()


def assert_waits(candidate: Candidate, seconds: float, before: datetime, after: datetime) -> None:
    retry_at = as_utc(candidate.retry_at)
    assert retry_at is not None
    assert before + timedelta(seconds=seconds) <= retry_at <= after + timedelta(seconds=seconds)


def test_a_stalled_host_costs_a_run_one_deadline_and_a_later_run_fetches_it(
    feed: Feed,
) -> None:
    stall = feed.stall()
    before = utcnow()
    started = time.monotonic()
    first = feed.run()
    took = time.monotonic() - started
    after = utcnow()
    # The good posts are published and the run ends about one deadline after its normal
    # work; the old fetcher waited out a 30 s read timeout on each of three tries.
    assert took < DEADLINE + 8
    assert first.published == 3
    assert feed.requests_for(STALLED) == 1  # not tried again within the run
    assert first.retry_later == 1
    candidate, post = feed.stalled()
    assert (candidate.state, candidate.attempts) == (CandidateState.PENDING, 1)
    assert_waits(candidate, BACKOFF, before, after)
    assert post.outcome == PostOutcome.PENDING

    stall.resume.set()  # the host recovers
    early = feed.run()  # before the backoff is over: left alone
    assert (early.published, early.retry_waiting) == (0, 1)
    assert feed.requests_for(STALLED) == 1

    feed.make_due()
    later = feed.run()
    assert (later.published, later.retry_waiting) == (1, 0)
    assert feed.requests_for(STALLED) == 2
    candidate, post = feed.stalled()
    assert candidate.state == CandidateState.PUBLISHED and candidate.retry_at is None
    assert post.outcome == PostOutcome.DONE


@pytest.mark.parametrize("feed", [0.3], indirect=True)  # deadline: three runs wait it out
def test_each_timeout_waits_three_times_longer_then_the_candidate_fails(feed: Feed) -> None:
    feed.stall(times=None)  # the host never recovers
    waits = [BACKOFF, 3 * BACKOFF]
    for attempt, wait in enumerate(waits, start=1):
        before = utcnow()
        feed.run()
        candidate, _ = feed.stalled()
        assert (candidate.state, candidate.attempts) == (CandidateState.PENDING, attempt)
        assert_waits(candidate, wait, before, utcnow())
        feed.make_due()
    last = feed.run()
    candidate, post = feed.stalled()
    assert (candidate.state, candidate.reason_code) == (CandidateState.FAILED, "timeout")
    assert candidate.attempts == 3 and candidate.retry_at is None
    assert post.outcome == PostOutcome.DONE and last.failed["timeout"] == 1
    assert feed.requests_for(STALLED) == 3


def test_a_longer_retry_after_than_the_backoff_is_honoured(feed: Feed) -> None:
    # Over the 60 s the fetcher waits in place: the failure carries it to the next run.
    feed.fake.fail(STALLED, status=503, headers={"Retry-After": "7200"})
    before = utcnow()
    feed.run()
    candidate, _ = feed.stalled()
    assert candidate.state == CandidateState.PENDING
    assert_waits(candidate, 7200, before, utcnow())
