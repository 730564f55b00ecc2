"""Safe download of image files from untrusted URLs: capped, timed, retried, SSRF-guarded.

Each download has a total deadline (``download_total_timeout``) besides the per-read timeout:
a host that sends a little and then nothing, or a byte every few seconds, holds a worker for
that long at most. A download that timed out is not tried again in the same run; the pipeline
tries it on a later one, after a backoff.

The fetcher guarantees only "a complete file, within the byte cap, with the magic bytes of a
supported image". Full validation (Pillow, the decompression-bomb guard) is the pipeline's job,
with ``scenery.imaging.decode``: a JPEG cut short at its source still downloads here.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

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
from scenery.imaging import FORMAT_EXTENSIONS
from scenery.netguard import BlockedAddress, GuardedTransport, Resolver, literal_ip, system_resolve
from scenery.netguard import checked_addresses as _checked_addresses

log = logging.getLogger(__name__)

MAX_TRIES = 3
"""Attempts per URL (first try included). Downloads are one of many per post, so a small bound
keeps a flaky host from stalling a run; the pipeline may retry a retryable failure later.
Timeouts are never tried again in place: a host that stalled once would hold the run again."""
MAX_RETRY_AFTER = 60.0
"""Longest Retry-After honoured in place; a longer ask fails (retryable) instead of blocking."""
SNIFF_BYTES = 12  # enough for every signature below ("RIFF....WEBP" is the longest)
REDIRECT_STATUS = frozenset({301, 302, 303, 307, 308})
SCHEMES = frozenset({"http", "https"})


def sniff(head: bytes) -> str | None:
    """Name the image format ``head`` (the first bytes of a file) starts with, or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith(b"BM"):
        return "bmp"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    return None


def _size(n: int) -> str:
    return f"{round(n / 2**20, 1):g} MB" if n >= 2**20 else f"{n:,} bytes"


@dataclass(frozen=True)
class Fetched:
    """A downloaded file, complete and named by its content hash."""

    url: str  # final URL after redirects
    path: Path
    size: int
    sha256: str
    content_type: str | None  # what the server claimed
    kind: str  # what the bytes are: jpeg, png, webp, gif, bmp or tiff


class FetchFailed(SceneryError):
    """A download was refused or failed; ``code`` is a stable reason for tallies."""

    def __init__(
        self, code: str, message: str, *, retryable: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.retryable = retryable
        self.retry_after = retry_after  # the wait the server asked for, when it asked


class Fetcher(ClientOwner):
    """Download image URLs into a directory, refusing anything unsafe; thread-safe."""

    def __init__(
        self,
        settings: Settings,
        client: httpx.Client | None = None,
        *,
        resolve_host: Resolver | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._settings = settings
        self._resolve = resolve_host or system_resolve
        self._sleep = sleep
        # Our own client pins each connection to the addresses the guard checked. A client
        # passed in cannot be pinned: we check the resolved addresses before each request, but
        # a DNS answer that changes between that check and httpx's own lookup (DNS rebinding)
        # could still reach a private address.
        self._pinned = client is None
        self._owns_client = client is None
        if client is None:
            limits = httpx.Limits(max_connections=max(10, settings.download_concurrency * 2))
            transport = GuardedTransport(self._resolve, settings.allow_private_urls, limits)
            client = make_client(settings, transport=transport)
        self._client = client

    def fetch(self, url: str, dest_dir: Path) -> Fetched:
        """Download ``url`` into ``dest_dir`` as ``<sha256>.<ext>``, or raise FetchFailed."""
        dest_dir.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self._settings.download_total_timeout
        for attempt in range(1, MAX_TRIES + 1):
            try:
                return self._fetch_once(url, dest_dir, deadline)
            except FetchFailed as exc:
                if not exc.retryable or exc.code == "timeout" or attempt == MAX_TRIES:
                    raise
                delay = exc.retry_after
                if delay is None:
                    delay = backoff_delay(attempt, self._settings)
                if delay > MAX_RETRY_AFTER or time.monotonic() + delay >= deadline:
                    raise
                log.info("retrying %s in %.2fs (%s): %s", url, delay, exc.code, exc)
                self._sleep(delay)
        raise AssertionError("unreachable")  # the loop returns or raises

    def fetch_many(
        self, urls: Sequence[str], dest_dir: Path
    ) -> Iterator[tuple[str, Fetched | FetchFailed]]:
        """Download ``urls`` on a few threads; yield ``(url, result)`` as each finishes."""
        workers = self._settings.download_concurrency
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fetch") as pool:
            futures: dict[Future[Fetched], str] = {
                pool.submit(self.fetch, url, dest_dir): url for url in urls
            }
            try:
                for future in as_completed(futures):
                    try:
                        yield futures[future], future.result()
                    except FetchFailed as exc:
                        yield futures[future], exc
            finally:
                # A caller that stops early should not wait for downloads nobody will read.
                pool.shutdown(wait=True, cancel_futures=True)

    # -- one attempt -----------------------------------------------------------------------

    def _fetch_once(self, url: str, dest_dir: Path, deadline: float) -> Fetched:
        current = self._check_url(url)
        for _hop in range(self._settings.download_max_redirects + 1):
            with (
                self._translate_errors(current),
                self._client.stream(
                    "GET",
                    current,
                    headers={"Accept": "image/*", "Accept-Encoding": "identity"},
                    timeout=self._timeout(current, deadline),
                ) as response,
            ):
                if response.status_code in REDIRECT_STATUS:
                    current = self._redirect_target(current, response)
                    continue
                self._check_status(current, response)
                return self._save(current, response, dest_dir, deadline)
        raise FetchFailed(
            "too_many_redirects",
            f"more than {self._settings.download_max_redirects} redirects: {url}",
        )

    def _timeout(self, url: httpx.URL, deadline: float) -> httpx.Timeout:
        """The request's timeouts: the configured ones, none longer than the time left, so a
        host that sends nothing at all is given up at the deadline too."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise self._out_of_time(url)
        settings = self._settings
        return httpx.Timeout(
            min(settings.download_read_timeout, left),
            connect=min(settings.download_connect_timeout, left),
        )

    def _out_of_time(self, url: httpx.URL) -> FetchFailed:
        total = self._settings.download_total_timeout
        return FetchFailed("timeout", f"download took over {total:g}s: {url}", retryable=True)

    def _check_url(self, url: str | httpx.URL) -> httpx.URL:
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError) as exc:
            raise FetchFailed("bad_url", f"not a valid URL ({exc}): {url}") from exc
        if parsed.scheme not in SCHEMES:
            code = "unsupported_scheme" if parsed.scheme else "bad_url"
            raise FetchFailed(code, f"only http and https URLs are downloaded: {url}")
        if not parsed.host:
            raise FetchFailed("bad_url", f"URL has no host: {url}")
        if parsed.userinfo:
            raise FetchFailed("bad_url", f"URL carries credentials, refused: {parsed.host}")
        if self._settings.allow_private_urls:
            return parsed
        # Literal IPs are always checked here; names are checked here only when the transport
        # cannot pin them (it checks them itself at connect time otherwise).
        if literal_ip(parsed.host) is not None or not self._pinned:
            port = parsed.port or (443 if parsed.scheme == "https" else 80)
            try:
                _checked_addresses(parsed.host, port, self._resolve, allow_private=False)
            except BlockedAddress as exc:
                raise FetchFailed("private_address", f"{exc}: {url}") from exc
            except OSError as exc:
                raise _connection_failed(exc, parsed) from exc
        return parsed

    def _redirect_target(self, current: httpx.URL, response: httpx.Response) -> httpx.URL:
        location = response.headers.get("Location")
        if not location:
            raise FetchFailed("http_status", f"HTTP {response.status_code} without Location")
        try:
            target = current.join(location)
        except httpx.InvalidURL as exc:
            raise FetchFailed("bad_url", f"bad redirect {location!r} from {current}") from exc
        log.debug("redirect %s -> %s", current, target)
        return self._check_url(target)

    def _check_status(self, url: httpx.URL, response: httpx.Response) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        message = f"HTTP {status} {response.reason_phrase}: {url}"
        if status == 429 or status in RETRYABLE_STATUS:
            wait = retry_after_seconds(response, default=-1.0)
            raise FetchFailed(
                "http_status", message, retryable=True, retry_after=wait if wait >= 0 else None
            )
        raise FetchFailed("http_status", message)

    def _save(
        self, url: httpx.URL, response: httpx.Response, dest_dir: Path, deadline: float
    ) -> Fetched:
        limit = self._settings.download_max_bytes
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            raise FetchFailed(
                "too_large", f"file is {_size(int(declared))} (limit {_size(limit)}): {url}"
            )
        fd, tmp_name = tempfile.mkstemp(prefix=".download-", suffix=".tmp", dir=dest_dir)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                size, digest, kind = self._stream_to(out, url, response, limit, deadline)
            final = dest_dir / f"{digest}.{FORMAT_EXTENSIONS[kind.upper()]}"
            if final.exists():  # named by content: an existing file already holds these bytes
                tmp.unlink()
            else:
                tmp.replace(final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        log.debug("fetched %s: %s, %s", url, kind, _size(size))
        content_type = response.headers.get("Content-Type")
        return Fetched(str(url), final, size, digest, content_type, kind)

    def _stream_to(
        self, out: BinaryIO, url: httpx.URL, response: httpx.Response, limit: int, deadline: float
    ) -> tuple[int, str, str]:
        hasher = hashlib.sha256()
        head = b""
        kind: str | None = None
        size = 0
        # Raw bytes, as sent: we asked for no content coding, and decoding one here would let
        # a small compressed chunk inflate to far more than the cap in a single step. Each
        # piece is what one socket read gave (64 KiB at most), not a fixed-size chunk: a host
        # that trickles is checked against the deadline at every byte it sends.
        for chunk in response.iter_raw():
            if time.monotonic() > deadline:
                raise self._out_of_time(url)
            size += len(chunk)
            if size > limit:
                raise FetchFailed(
                    "too_large", f"download stopped at {_size(size)} (limit {_size(limit)}): {url}"
                )
            if kind is None:
                head += chunk[: SNIFF_BYTES - len(head)]
                if len(head) >= SNIFF_BYTES:
                    kind = _sniffed(head, url)  # abandon an HTML page after its first chunk
            hasher.update(chunk)
            out.write(chunk)
        if kind is None:
            kind = _sniffed(head, url)
        return size, hasher.hexdigest(), kind

    @contextmanager
    def _translate_errors(self, url: httpx.URL) -> Iterator[None]:
        try:
            yield
        except BlockedAddress as exc:  # raised by the pinned transport at connect time
            raise FetchFailed("private_address", f"{exc}: {url}") from exc
        except socket.gaierror as exc:  # likewise: the pinned transport resolves names itself
            raise _connection_failed(exc, url) from exc
        except httpx.TimeoutException as exc:
            raise FetchFailed(
                "timeout", f"timed out ({exc or type(exc).__name__}): {url}", retryable=True
            ) from exc
        except httpx.RemoteProtocolError as exc:
            # Typically the server closed before sending all of Content-Length.
            raise FetchFailed(
                "truncated", f"transfer cut short ({exc}): {url}", retryable=True
            ) from exc
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise FetchFailed("bad_url", f"{exc}: {url}") from exc
        except httpx.TransportError as exc:
            raise _connection_failed(exc, url) from exc


def _sniffed(head: bytes, url: httpx.URL) -> str:
    kind = sniff(head)
    if kind is None:
        raise FetchFailed("not_an_image", f"not an image (starts {head[:8]!r}): {url}")
    return kind


def _connection_failed(exc: Exception, url: httpx.URL) -> FetchFailed:
    # An unknown host name will not start resolving on a retry a second later; other network
    # errors (refused, reset, DNS server busy) often clear up.
    permanent = isinstance(exc, socket.gaierror) and exc.errno == socket.EAI_NONAME
    return FetchFailed("connection", f"connection failed ({exc}): {url}", retryable=not permanent)
