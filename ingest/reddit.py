"""Reddit listing client: public JSON listings (or app-only OAuth), paced, paginated, retried."""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import httpx

from scenery.config import Settings
from scenery.errors import SceneryError
from scenery.http_client import (
    RETRYABLE_STATUS,
    ClientOwner,
    backoff_delay,
    make_client,
    retry_after_seconds,
)

log = logging.getLogger(__name__)

SORTS = ("new", "hot", "top", "rising")
TIME_FILTERS = ("hour", "day", "week", "month", "year", "all")
PAGE_SIZE = 100  # the most Reddit returns per listing page
_SUBREDDIT = re.compile(r"[A-Za-z0-9_]{2,21}")
_TOKEN_MARGIN = 60.0  # refresh this many seconds before the token says it expires
_REFUSALS = {
    403: "forbidden (a private or quarantined subreddit?)",
    404: "not found (a banned or misspelt subreddit?)",
}


class ListingFailed(SceneryError):
    """A listing could not be fetched after every retry."""


class BadListingRequest(SceneryError, ValueError):
    """A listing was asked for with an invalid subreddit, sort, time filter or limit."""


@dataclass(frozen=True)
class Post:
    """One link post from a listing, with its raw ``data`` kept for the resolver."""

    fullname: str
    id: str
    subreddit: str
    title: str
    author: str | None
    permalink: str
    url: str | None
    domain: str | None
    created_at: datetime
    score: int
    flair: str | None
    over_18: bool
    spoiler: bool
    is_video: bool
    is_self: bool
    removed_by_category: str | None
    data: Mapping[str, Any] = field(compare=False, hash=False, repr=False)

    @classmethod
    def from_listing_child(cls, child: Mapping[str, Any]) -> Post:
        """Build a post from a listing child (``{"kind": "t3", "data": {...}}``)."""
        if not isinstance(child, Mapping) or child.get("kind") != "t3":
            raise ValueError(f"not a link post: {str(child)[:80]}")
        data = child.get("data")
        if not isinstance(data, Mapping) or not data.get("id"):
            raise ValueError("link post without data or id")
        author = data.get("author")
        return cls(
            fullname=data.get("name") or f"t3_{data['id']}",
            id=str(data["id"]),
            subreddit=str(data.get("subreddit") or ""),
            title=str(data.get("title") or ""),
            author=None if author in (None, "", "[deleted]") else str(author),
            permalink=str(data.get("permalink") or ""),
            url=data.get("url_overridden_by_dest") or data.get("url") or None,
            domain=data.get("domain") or None,
            created_at=datetime.fromtimestamp(float(data.get("created_utc") or 0), UTC),
            score=int(data.get("score") or 0),
            flair=data.get("link_flair_text") or None,
            over_18=bool(data.get("over_18")),
            spoiler=bool(data.get("spoiler")),
            is_video=bool(data.get("is_video")),
            is_self=bool(data.get("is_self")),
            removed_by_category=data.get("removed_by_category") or None,
            data=MappingProxyType(dict(data)),
        )


class _Retry(Exception):
    """A failed attempt worth another try; ``wait`` overrides the backoff when set."""

    def __init__(self, problem: str, wait: float | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.wait = wait


class RedditClient(ClientOwner):
    """Fetch subreddit listings politely: paced, rate-limit aware, retried."""

    def __init__(
        self,
        settings: Settings,
        client: httpx.Client | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._client = client or make_client(settings)
        self._owns_client = client is None
        self._sleep = sleep
        self._rng = rng
        self._clock = clock
        self._last_request: float | None = None
        self._not_before = 0.0  # set from X-Ratelimit-* headers
        self._token: str | None = None
        self._token_expires = 0.0

    @property
    def uses_oauth(self) -> bool:
        """Whether app credentials are configured (listings then come from the OAuth host)."""
        return bool(self._settings.reddit_client_id and self._settings.reddit_client_secret)

    def listing(
        self, subreddit: str, sort: str = "new", time_filter: str | None = None, limit: int = 100
    ) -> Iterator[Post]:
        """Yield up to ``limit`` posts of a subreddit listing, newest pages first, each once."""
        if not _SUBREDDIT.fullmatch(subreddit):
            raise BadListingRequest(
                f"invalid subreddit name {subreddit!r}: use 2-21 letters, digits or underscores"
            )
        if sort not in SORTS:
            raise BadListingRequest(f"invalid sort {sort!r}: use one of {', '.join(SORTS)}")
        if time_filter is not None and (sort != "top" or time_filter not in TIME_FILTERS):
            raise BadListingRequest(
                f"time filter {time_filter!r} needs sort 'top' and one of {', '.join(TIME_FILTERS)}"
            )
        if limit < 0:
            raise BadListingRequest(f"limit must not be negative (got {limit})")
        return self._iter_listing(subreddit, sort, time_filter, limit)

    def _iter_listing(
        self, subreddit: str, sort: str, time_filter: str | None, limit: int
    ) -> Iterator[Post]:
        seen: set[str] = set()
        after: str | None = None
        while len(seen) < limit:
            params = {"limit": str(PAGE_SIZE), "raw_json": "1"}
            if time_filter:
                params["t"] = time_filter
            if after:
                params["after"] = after
            children, after = self._page(f"/r/{subreddit}/{sort}.json", params)
            log.debug("r/%s/%s: %d posts, after=%s", subreddit, sort, len(children), after)
            for child in children:
                post = self._parse_child(child)
                if post is None or post.fullname in seen:
                    continue
                seen.add(post.fullname)
                yield post
                if len(seen) >= limit:
                    return
            if not children or not after:
                return

    @staticmethod
    def _parse_child(child: Any) -> Post | None:
        try:
            return Post.from_listing_child(child)
        except (ValueError, TypeError) as exc:
            log.warning("skipping listing entry: %s", exc)
            return None

    def _page(self, path: str, params: dict[str, str]) -> tuple[list[Any], str | None]:
        """Fetch one listing page; return its children and the ``after`` cursor."""
        url = self._base_url() + path
        full_url = str(httpx.URL(url, params=params))
        body = self._get_json(url, params, full_url)
        if not isinstance(body, Mapping) or body.get("kind") != "Listing":
            raise ListingFailed(f"{full_url} did not return a Reddit listing")
        data = body.get("data")
        children = data.get("children") if isinstance(data, Mapping) else None
        if not isinstance(data, Mapping) or not isinstance(children, list):
            raise ListingFailed(f"{full_url} returned a listing without children")
        after = data.get("after")
        return children, after if isinstance(after, str) and after else None

    def _base_url(self) -> str:
        base = self._settings.reddit_oauth_base_url if self.uses_oauth else None
        return (base or self._settings.reddit_base_url).rstrip("/")

    def _get_json(self, url: str, params: dict[str, str], full_url: str) -> Any:
        tries = self._settings.reddit_max_tries
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._send(url, params)
                if response.status_code == 401 and self.uses_oauth and not refreshed:
                    log.info("Reddit refused the access token; fetching a new one")
                    self._token = None
                    refreshed = True
                    attempt -= 1  # a refreshed token is not a failed try
                    continue
                return self._accept(response, full_url)
            except _Retry as retry:
                if attempt >= tries:
                    raise ListingFailed(
                        f"could not fetch {full_url}: {retry.problem} (gave up after {tries} tries)"
                    ) from None
                wait = retry.wait
                if wait is None:
                    wait = backoff_delay(attempt, self._settings, self._rng)
                log.warning("%s: %s; retrying in %.1f s", full_url, retry.problem, wait)
                self._sleep(wait)

    def _send(self, url: str, params: dict[str, str]) -> httpx.Response:
        headers = self._auth_headers()
        self._pace()
        try:
            response = self._client.get(
                url, params=params, headers=headers, timeout=self._settings.reddit_timeout
            )
        except httpx.TimeoutException:
            raise _Retry(f"timed out after {self._settings.reddit_timeout:g} s") from None
        except httpx.TransportError as exc:
            raise _Retry(f"connection failed ({type(exc).__name__}: {exc})") from None
        self._note_rate_limit(response)
        return response

    def _accept(self, response: httpx.Response, full_url: str) -> Any:
        status = response.status_code
        if status == 429:
            wait = retry_after_seconds(response, self._settings.rate_limit_default_wait)
            raise _Retry("rate limited (HTTP 429)", wait)
        if status in RETRYABLE_STATUS:
            raise _Retry(f"server error (HTTP {status})")
        if status != 200:
            reason = _REFUSALS.get(status, "refused")
            raise ListingFailed(f"Reddit answered HTTP {status} for {full_url}: {reason}")
        try:
            return response.json()
        except ValueError:
            kind = response.headers.get("Content-Type", "unknown type")
            raise ListingFailed(f"{full_url} returned a body that is not JSON ({kind})") from None

    def _pace(self) -> None:
        """Sleep until the request interval has passed and any rate-limit window has reset."""
        now = self._clock()
        ready = self._not_before
        if self._last_request is not None:
            ready = max(ready, self._last_request + self._settings.reddit_request_interval)
        if ready > now:
            self._sleep(ready - now)
        self._last_request = self._clock()

    def _note_rate_limit(self, response: httpx.Response) -> None:
        remaining = response.headers.get("X-Ratelimit-Remaining")
        reset = response.headers.get("X-Ratelimit-Reset")
        if remaining is None or reset is None:
            return
        try:
            left, reset_in = float(remaining), float(reset)
        except ValueError:
            return
        if left < 2:
            log.info("Reddit rate limit nearly spent; waiting %.0f s for it to reset", reset_in)
            self._not_before = self._clock() + max(0.0, reset_in)

    def _auth_headers(self) -> dict[str, str]:
        if not self.uses_oauth:
            return {}
        if self._token is None or self._clock() >= self._token_expires:
            self._fetch_token()
        return {"Authorization": f"bearer {self._token}"}

    def _fetch_token(self) -> None:
        """Get an app-only access token with the client-credentials grant."""
        url = self._settings.reddit_base_url.rstrip("/") + "/api/v1/access_token"
        auth = (self._settings.reddit_client_id or "", self._settings.reddit_client_secret or "")
        self._pace()
        try:
            response = self._client.post(
                url,
                auth=auth,
                data={"grant_type": "client_credentials"},
                timeout=self._settings.reddit_timeout,
            )
        except httpx.TimeoutException:
            raise _Retry("timed out fetching an access token") from None
        except httpx.TransportError as exc:
            raise _Retry(f"connection failed fetching an access token ({exc})") from None
        if response.status_code in RETRYABLE_STATUS:
            raise _Retry(f"server error fetching an access token (HTTP {response.status_code})")
        token, expires_in = _token_from(response)
        if token is None:
            raise ListingFailed(
                f"Reddit refused the app credentials (HTTP {response.status_code} from {url}); "
                "check SCENERY_REDDIT_CLIENT_ID and SCENERY_REDDIT_CLIENT_SECRET"
            )
        self._token = token
        self._token_expires = self._clock() + max(0.0, expires_in - _TOKEN_MARGIN)
        log.info("got a Reddit access token valid for %.0f s", expires_in)


def _token_from(response: httpx.Response) -> tuple[str | None, float]:
    """The access token and its lifetime from a token response, or (None, 0) if refused."""
    if response.status_code != 200:
        return None, 0.0
    try:
        body = response.json()
    except ValueError:
        return None, 0.0
    token = body.get("access_token") if isinstance(body, Mapping) else None
    if not isinstance(token, str) or not token:
        return None, 0.0
    try:
        expires_in = float(body.get("expires_in") or 3600)
    except (TypeError, ValueError):
        expires_in = 3600.0
    return token, expires_in
