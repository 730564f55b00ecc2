"""A download's total deadline (``download_total_timeout``): a host that sends nothing, stops
mid-transfer or trickles a byte at a time is given up once it passes, however long the
per-read timeout, and nothing is tried again in place past it.

The fake Reddit plays the image host: it can hold a request, stall a body after its first
bytes, or trickle it. Bounds on wall time are far below what the per-read timeout alone costs
(30 s a read here), and far above the deadline (0.5 s)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scenery.fetch import Fetcher, FetchFailed
from tests.fakes.reddit import FakeReddit
from tests.fetch_host import Sleeps, files_in

DEADLINE = 0.5
BOUND = 10.0  # seconds: the deadline plus room for a loaded machine; one read timeout is 30


@pytest.fixture(scope="module")
def served() -> Iterator[FakeReddit]:
    fake = FakeReddit()
    with fake.running():
        yield fake


@pytest.fixture
def fake(served: FakeReddit) -> Iterator[FakeReddit]:
    served.reset()
    yield served
    for fault in served.faults:  # let held server threads go
        fault.resume.set()
        if fault.release is not None:
            fault.release.set()


@pytest.fixture
def slow_fetcher(fake: FakeReddit, tmp_path: Path, fetch_sleeps: Sleeps) -> Iterator[Fetcher]:
    """A fetcher whose reads may each wait 30 s, within a total deadline of 0.5 s."""
    settings = fake.settings(tmp_path, download_read_timeout=30.0, download_total_timeout=DEADLINE)
    with Fetcher(settings, sleep=fetch_sleeps) as fetcher:
        yield fetcher


def timed_out(fetcher: Fetcher, url: str, download_dir: Path) -> tuple[FetchFailed, float]:
    """Fetch ``url``, expecting it to fail; the failure and how long it took."""
    started = time.monotonic()
    with pytest.raises(FetchFailed) as caught:
        fetcher.fetch(url, download_dir)
    return caught.value, time.monotonic() - started


def test_a_host_that_sends_nothing_is_given_up_at_the_deadline(
    fake: FakeReddit, slow_fetcher: Fetcher, download_dir: Path
) -> None:
    fake.hold("/img/a.jpg")
    failure, took = timed_out(slow_fetcher, fake.url("/img/a.jpg"), download_dir)

    assert (failure.code, failure.retryable) == ("timeout", True)
    assert DEADLINE <= took < BOUND
    assert fake.paths() == ["/img/a.jpg"]  # not asked again in place


def test_a_host_that_stops_mid_transfer_is_given_up_at_the_deadline(
    fake: FakeReddit, slow_fetcher: Fetcher, download_dir: Path, photos: list[Path]
) -> None:
    body = photos[0].read_bytes()
    fake.fail("/img/a.jpg", status=200, body=body, content_type="image/jpeg", stall_after=4096)
    failure, took = timed_out(slow_fetcher, fake.url("/img/a.jpg"), download_dir)

    assert (failure.code, failure.retryable) == ("timeout", True)
    assert DEADLINE <= took < BOUND
    assert fake.paths() == ["/img/a.jpg"]
    assert files_in(download_dir) == []


def test_a_trickling_host_is_given_up_at_the_deadline(
    fake: FakeReddit, slow_fetcher: Fetcher, download_dir: Path, photos: list[Path]
) -> None:
    # A byte every 50 ms never trips a per-read timeout; the whole body would take 20 s.
    body = photos[0].read_bytes()[:4496]
    fake.fail(
        "/img/a.jpg",
        status=200,
        body=body,
        content_type="image/jpeg",
        stall_after=4096,
        trickle=0.05,
    )
    failure, took = timed_out(slow_fetcher, fake.url("/img/a.jpg"), download_dir)

    assert (failure.code, failure.retryable) == ("timeout", True)
    assert "took over 0.5s" in str(failure)
    assert DEADLINE <= took < BOUND
    assert files_in(download_dir) == []


def test_no_wait_for_a_retry_in_place_runs_past_the_deadline(
    fake: FakeReddit, slow_fetcher: Fetcher, download_dir: Path, fetch_sleeps: Sleeps
) -> None:
    # 5 s is a Retry-After honoured in place (up to 60 s), but not within a 0.5 s deadline.
    fake.fail("/img/a.jpg", status=503, headers={"Retry-After": "5"}, times=None)
    failure, _ = timed_out(slow_fetcher, fake.url("/img/a.jpg"), download_dir)

    assert (failure.code, failure.retryable, failure.retry_after) == ("http_status", True, 5.0)
    assert fetch_sleeps == []
    assert fake.paths() == ["/img/a.jpg"]
