"""HTTP plumbing shared by the Reddit client, the resolver and the downloader."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Self

import httpx

from scenery import __version__
from scenery.config import Settings

RETRYABLE_STATUS = frozenset({500, 502, 503, 504, 520, 521, 522, 523, 524})


def user_agent(settings: Settings) -> str:
    """The User-Agent Reddit asks for: ``<platform>:<app id>:<version> (by /u/<username>)``."""
    return settings.reddit_user_agent or (
        f"python:scenery:{__version__} (by /u/{settings.reddit_username})"
    )


def make_client(settings: Settings, **kwargs: object) -> httpx.Client:
    """An httpx client with Scenery's User-Agent and timeouts; redirects are never automatic."""
    timeout = httpx.Timeout(
        settings.download_read_timeout, connect=settings.download_connect_timeout
    )
    return httpx.Client(
        headers={"User-Agent": user_agent(settings)},
        timeout=timeout,
        follow_redirects=False,
        **kwargs,  # type: ignore[arg-type]
    )


def backoff_delay(attempt: int, settings: Settings, rng: random.Random | None = None) -> float:
    """Seconds before retry number ``attempt`` (1-based): capped exponential, jittered."""
    ceiling = min(settings.retry_backoff_max, settings.retry_backoff_base * 2 ** (attempt - 1))
    return (rng or random).uniform(ceiling / 2, ceiling)


def retry_after_seconds(response: httpx.Response, default: float) -> float:
    """The wait a 429/503 response asks for (seconds or an HTTP date), else ``default``."""
    value = response.headers.get("Retry-After")
    if not value:
        return default
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class ClientOwner:
    """Closes ``self._client`` on ``close()`` or leaving a ``with`` block, if it made it."""

    _client: httpx.Client
    _owns_client: bool

    def close(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
