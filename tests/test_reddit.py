"""The Reddit listing client against a fake Reddit on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import random
import re
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ingest.reddit import BadListingRequest, ListingFailed, Post, RedditClient
from scenery.errors import SceneryError
from tests.fakes.reddit import FakeReddit, Fault
from tests.fakes.reddit_posts import fixture_post, listing, make_post


class FakeTime:
    """A clock that only moves when the client sleeps; records every sleep."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture(scope="module")
def served() -> Iterator[FakeReddit]:
    """One fake server per module: stopping a server costs half a second."""
    fake = FakeReddit()
    with fake.running():
        yield fake


@pytest.fixture
def fake(served: FakeReddit) -> FakeReddit:
    served.reset()
    return served


@pytest.fixture
def hold(fake: FakeReddit) -> Iterator[Any]:
    """``fake.hold``: a request held until released, a read that hangs; every hold is released
    when the test ends, so the fake's threads finish."""
    held: list[Fault] = []

    def make(path: str, times: int | None = 1) -> Fault:
        fault = fake.hold(path, times=times)
        held.append(fault)
        return fault

    yield make
    for fault in held:
        assert fault.release is not None
        fault.release.set()


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def make_client(fake: FakeReddit, tmp_path: Path, fake_time: FakeTime) -> Any:
    """Build a RedditClient on the fake with a fake clock; closes them afterwards."""
    clients: list[RedditClient] = []

    def build(**overrides: Any) -> RedditClient:
        settings = fake.settings(tmp_path, **overrides)
        client = RedditClient(
            settings, sleep=fake_time.sleep, clock=fake_time.clock, rng=random.Random(7)
        )
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.close()


def posts(count: int, prefix: str = "p") -> list[dict[str, Any]]:
    """``count`` distinct posts, newest first."""
    return [make_post(id=f"{prefix}{n:04d}", created_utc=1_717_000_000 - n) for n in range(count)]


def ids(found: list[Post]) -> list[str]:
    return [post.id for post in found]


# -- pagination ------------------------------------------------------------------------------


def test_paginates_with_after_until_the_limit(fake: FakeReddit, make_client: Any) -> None:
    fake.add_posts("EarthPorn", posts(250))
    found = list(make_client().listing("EarthPorn", limit=230))
    assert ids(found) == [f"p{n:04d}" for n in range(230)]
    calls = fake.listing_requests()
    assert len(calls) == 3
    assert [c.query.get("after") for c in calls] == [None, "t3_p0099", "t3_p0199"]


def test_stops_when_after_is_null(fake: FakeReddit, make_client: Any) -> None:
    fake.add_posts("EarthPorn", posts(150))
    assert len(list(make_client().listing("EarthPorn", limit=1000))) == 150
    assert len(fake.listing_requests()) == 2


def test_stops_on_an_empty_page(fake: FakeReddit, make_client: Any) -> None:
    fake.add_posts("EarthPorn", posts(150))
    empty = json.dumps(listing([], after="t3_zzzz"))
    fake.fail("/r/EarthPorn/new.json", status=200, body=empty, request_number=2)
    assert len(list(make_client().listing("EarthPorn", limit=500))) == 100
    assert len(fake.listing_requests()) == 2


def test_yields_posts_repeated_across_pages_once(fake: FakeReddit, make_client: Any) -> None:
    page = posts(150)
    page.insert(100, dict(page[95]))  # Reddit's `new` shifts while we page through it
    fake.add_posts("EarthPorn", page)
    found = list(make_client().listing("EarthPorn", limit=1000))
    assert ids(found) == [f"p{n:04d}" for n in range(150)]


def test_skips_entries_that_are_not_link_posts(fake: FakeReddit, make_client: Any) -> None:
    body = listing(posts(2))
    body["data"]["children"].insert(1, {"kind": "t1", "data": {"id": "c1"}})
    fake.fail("/r/pics/new.json", status=200, body=json.dumps(body))
    assert ids(list(make_client().listing("pics"))) == ["p0000", "p0001"]


# -- requests --------------------------------------------------------------------------------


def test_sends_page_size_and_raw_json(fake: FakeReddit, make_client: Any) -> None:
    fake.add_posts("EarthPorn", posts(3))
    list(make_client().listing("EarthPorn", sort="hot", limit=2))
    (call,) = fake.listing_requests()
    assert call.path == "/r/EarthPorn/hot.json"
    assert call.query == {"limit": "100", "raw_json": "1"}


def test_sends_time_filter_only_for_top(fake: FakeReddit, make_client: Any) -> None:
    fake.add_posts("EarthPorn", posts(3))
    list(make_client().listing("EarthPorn", sort="top", time_filter="week"))
    (call,) = fake.listing_requests()
    assert call.path == "/r/EarthPorn/top.json"
    assert call.query["t"] == "week"


def test_sends_the_user_agent_reddit_asks_for(fake: FakeReddit, make_client: Any) -> None:
    fake.add_posts("EarthPorn", posts(1))
    list(make_client(reddit_username="someone").listing("EarthPorn"))
    agent = fake.listing_requests()[0].headers["User-Agent"]
    assert re.fullmatch(r"python:scenery:\d+\.\d+\.\d+\S* \(by /u/someone\)", agent)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("r/EarthPorn",), "invalid subreddit name"),
        (("a",), "invalid subreddit name"),
        (("x" * 22,), "invalid subreddit name"),
        (("EarthPorn", "best"), "invalid sort"),
        (("EarthPorn", "new", "week"), "needs sort 'top'"),
        (("EarthPorn", "top", "decade"), "needs sort 'top'"),
    ],
)
def test_rejects_bad_listing_arguments_before_any_request(
    fake: FakeReddit, make_client: Any, args: tuple[str, ...], words: str
) -> None:
    with pytest.raises(BadListingRequest, match=words) as caught:
        make_client().listing(*args)
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, SceneryError)
    assert fake.requests == []


# -- failures and retries --------------------------------------------------------------------


def test_waits_retry_after_on_429_then_succeeds(
    fake: FakeReddit, make_client: Any, fake_time: FakeTime
) -> None:
    fake.add_posts("EarthPorn", posts(5))
    fake.fail("/r/EarthPorn/new.json", status=429, headers={"Retry-After": "7"})
    assert len(list(make_client().listing("EarthPorn"))) == 5
    assert fake_time.sleeps == [7.0]
    assert len(fake.listing_requests()) == 2


def test_waits_the_default_on_429_without_retry_after(
    fake: FakeReddit, make_client: Any, fake_time: FakeTime
) -> None:
    fake.add_posts("EarthPorn", posts(5))
    fake.fail("/r/EarthPorn/new.json", status=429)
    list(make_client(rate_limit_default_wait=30).listing("EarthPorn"))
    assert fake_time.sleeps == [30.0]


def test_retries_a_server_error_after_a_backoff(
    fake: FakeReddit, make_client: Any, fake_time: FakeTime
) -> None:
    fake.add_posts("EarthPorn", posts(5))
    fake.fail("/r/EarthPorn/new.json", status=500)
    client = make_client(retry_backoff_base=4.0, retry_backoff_max=60)
    assert len(list(client.listing("EarthPorn"))) == 5
    (wait,) = fake_time.sleeps
    assert 2.0 <= wait <= 4.0


def test_gives_up_on_persistent_server_errors(
    fake: FakeReddit, make_client: Any, fake_time: FakeTime
) -> None:
    fake.add_posts("EarthPorn", posts(5))
    fake.fail("/r/EarthPorn/new.json", status=503, times=None)
    with pytest.raises(ListingFailed, match=r"HTTP 503.*after 3 tries") as caught:
        list(make_client(reddit_max_tries=3).listing("EarthPorn"))
    assert "/r/EarthPorn/new.json" in str(caught.value)
    assert len(fake.listing_requests()) == 3
    assert len(fake_time.sleeps) == 2


def test_retries_a_hung_read_then_gives_up(fake: FakeReddit, make_client: Any, hold: Any) -> None:
    fake.add_posts("EarthPorn", posts(5))
    hung = hold("/r/EarthPorn/new.json", times=None)  # answered only after the test
    client = make_client(reddit_timeout=0.3, reddit_max_tries=2)
    with pytest.raises(ListingFailed, match=r"timed out after 0.3 s.*after 2 tries"):
        list(client.listing("EarthPorn"))
    assert hung.arrived.is_set() and len(fake.listing_requests()) == 2


def test_recovers_when_only_the_first_read_hangs(
    fake: FakeReddit, make_client: Any, hold: Any, caplog: pytest.LogCaptureFixture
) -> None:
    fake.add_posts("EarthPorn", posts(5))
    hung = hold("/r/EarthPorn/new.json")  # the first request only; answered after the test
    with caplog.at_level(logging.WARNING, logger="ingest.reddit"):
        assert len(list(make_client(reddit_timeout=0.3).listing("EarthPorn"))) == 5
    # the client gave up on the first read itself and asked again
    assert hung.arrived.is_set() and len(fake.listing_requests()) == 2
    assert "raw_json=1: timed out after 0.3 s; retrying in" in caplog.text


def test_gives_up_when_reddit_cannot_be_reached(
    tmp_path: Path, fake_time: FakeTime, fake: FakeReddit
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = fake.settings(tmp_path, reddit_base_url=closed, reddit_max_tries=2)
    with (
        RedditClient(settings, sleep=fake_time.sleep, clock=fake_time.clock) as client,
        pytest.raises(ListingFailed, match=r"connection failed.*after 2 tries"),
    ):
        list(client.listing("EarthPorn"))


@pytest.mark.parametrize(
    ("status", "reason", "words"), [(403, "private", "HTTP 403"), (404, "banned", "HTTP 404")]
)
def test_refused_subreddit_fails_at_once(
    fake: FakeReddit, make_client: Any, status: int, reason: str, words: str
) -> None:
    fake.refuse("SecretPhotos", status, reason)
    with pytest.raises(ListingFailed, match=words) as caught:
        list(make_client().listing("SecretPhotos"))
    assert "/r/SecretPhotos/new.json" in str(caught.value)
    assert len(fake.listing_requests()) == 1


@pytest.mark.parametrize(
    ("body", "content_type", "words"),
    [
        ('{"kind": "Listing", "data": {"chil', "application/json", "not JSON"),
        ("<html><body>Our CDN was unable to reach us</body></html>", "text/html", "not JSON"),
        ('{"kind": "t1", "data": {}}', "application/json", "did not return a Reddit listing"),
        ('[{"kind": "Listing"}]', "application/json", "did not return a Reddit listing"),
        ('{"kind": "Listing", "data": {"children": {}}}', "application/json", "without children"),
    ],
)
def test_rejects_bodies_that_are_not_listings(
    fake: FakeReddit, make_client: Any, body: str, content_type: str, words: str
) -> None:
    fake.add_posts("EarthPorn", posts(5))
    fake.fail("/r/EarthPorn/new.json", status=200, body=body, content_type=content_type)
    with pytest.raises(ListingFailed, match=words):
        list(make_client().listing("EarthPorn"))


# -- politeness ------------------------------------------------------------------------------


def test_waits_for_the_rate_limit_reset_when_nearly_spent(
    fake: FakeReddit, make_client: Any, fake_time: FakeTime
) -> None:
    fake.add_posts("EarthPorn", posts(150))
    fake.ratelimit_remaining = 1
    fake.ratelimit_reset = 42
    list(make_client().listing("EarthPorn", limit=150))
    assert fake_time.sleeps == [42.0]


def test_does_not_wait_while_rate_limit_remains(
    fake: FakeReddit, make_client: Any, fake_time: FakeTime
) -> None:
    fake.add_posts("EarthPorn", posts(150))
    fake.ratelimit_remaining = 2
    list(make_client().listing("EarthPorn", limit=150))
    assert fake_time.sleeps == []


def test_spaces_requests_by_the_request_interval(
    fake: FakeReddit, make_client: Any, fake_time: FakeTime
) -> None:
    fake.add_posts("EarthPorn", posts(250))
    list(make_client(reddit_request_interval=2.0).listing("EarthPorn", limit=250))
    assert fake_time.sleeps == [2.0, 2.0]


# -- OAuth -----------------------------------------------------------------------------------


def oauth(make_client: Any, fake: FakeReddit, **overrides: Any) -> RedditClient:
    return make_client(
        reddit_client_id=fake.client_id, reddit_client_secret=fake.client_secret, **overrides
    )


def test_oauth_fetches_one_token_and_lists_from_the_oauth_host(
    fake: FakeReddit, make_client: Any
) -> None:
    fake.add_posts("EarthPorn", posts(250))
    assert len(list(oauth(make_client, fake).listing("EarthPorn", limit=250))) == 250
    assert fake.tokens_issued == 1
    token_call = fake.requests[0]
    assert token_call.path == "/api/v1/access_token"
    assert token_call.method == "POST"
    assert token_call.form == {"grant_type": "client_credentials"}
    calls = fake.listing_requests()
    assert [c.path for c in calls] == ["/oauth/r/EarthPorn/new.json"] * 3
    assert all(c.headers["Authorization"].startswith("bearer ") for c in calls)


def test_oauth_refreshes_a_rejected_token_once(fake: FakeReddit, make_client: Any) -> None:
    fake.add_posts("EarthPorn", posts(150))
    found = oauth(make_client, fake).listing("EarthPorn", limit=150)
    first = next(found)
    fake.revoke_tokens()
    assert len([first, *found]) == 150
    assert fake.tokens_issued == 2


def test_oauth_gives_up_when_a_fresh_token_is_rejected(fake: FakeReddit, make_client: Any) -> None:
    fake.add_posts("EarthPorn", posts(5))
    fake.fail("/oauth/r/*", status=401, times=None, body='{"error": 401}')
    with pytest.raises(ListingFailed, match="HTTP 401"):
        list(oauth(make_client, fake).listing("EarthPorn"))
    assert fake.tokens_issued == 2


def test_oauth_refreshes_an_expired_token(fake: FakeReddit, make_client: Any) -> None:
    fake.add_posts("EarthPorn", posts(150))
    fake.token_lifetime = 120  # refreshed a minute early, so stale after 60 s
    client = oauth(make_client, fake, reddit_request_interval=100)
    assert len(list(client.listing("EarthPorn", limit=150))) == 150
    assert fake.tokens_issued == 2


def test_oauth_bad_credentials_fail_clearly(fake: FakeReddit, make_client: Any) -> None:
    fake.add_posts("EarthPorn", posts(5))
    client = make_client(reddit_client_id="wrong", reddit_client_secret="wrong")
    with pytest.raises(ListingFailed, match="SCENERY_REDDIT_CLIENT_ID"):
        list(client.listing("EarthPorn"))
    assert fake.listing_requests() == []


# -- parsing ---------------------------------------------------------------------------------


def test_parses_a_listing_child_into_a_post() -> None:
    post = fixture_post("direct_image")
    assert post.fullname == "t3_1d4k2qa"
    assert post.id == "1d4k2qa"
    assert post.subreddit == "EarthPorn"
    assert post.author == "alpine_lens"
    assert post.url == "https://i.redd.it/8x2kq0v7a43d1.jpeg"
    assert post.domain == "i.redd.it"
    assert post.created_at == datetime(2024, 5, 29, 16, 26, 40, tzinfo=UTC)
    assert post.flair == "OC"
    assert post.permalink.startswith("/r/EarthPorn/comments/1d4k2qa/")
    assert post.data["preview"]["images"][0]["source"]["width"] == 4032
    assert not (post.over_18 or post.spoiler or post.is_video or post.is_self)


def test_parses_a_deleted_author_as_none() -> None:
    post = fixture_post("removed")
    assert post.author is None
    assert post.removed_by_category == "deleted"


def test_post_data_is_read_only_and_posts_hash() -> None:
    post = fixture_post("gallery")
    with pytest.raises(TypeError):
        post.data["title"] = "changed"  # type: ignore[index]
    assert len({post, fixture_post("gallery")}) == 1
