"""Safe download, when it fails: a stable code, no file left, the byte cap held in bounded
memory, passing failures retried in place (not timeouts), Retry-After honoured or refused."""

from __future__ import annotations

import re
import time
import tracemalloc
from pathlib import Path

import httpx
import pytest

from scenery.fetch import MAX_TRIES, Fetcher, FetchFailed
from tests.fetch_host import Host, Sleeps, fake_resolver, files_in, make_settings


@pytest.mark.parametrize(
    ("path", "code", "retryable", "tries"),
    [
        ("/page.jpg", "not_an_image", False, 1),
        ("/huge.jpg", "too_large", False, 1),
        ("/huge-unsized.jpg", "too_large", False, 1),
        ("/short-body.jpg", "truncated", True, MAX_TRIES),
        ("/broken.jpg", "http_status", True, MAX_TRIES),
        ("/missing.jpg", "http_status", False, 1),
        ("/loop", "too_many_redirects", False, 6),  # download_max_redirects=5, plus the first
    ],
)
def test_failure_has_code_and_leaves_no_files(
    fetcher: Fetcher,
    image_host: Host,
    download_dir: Path,
    path: str,
    code: str,
    retryable: bool,
    tries: int,
) -> None:
    with pytest.raises(FetchFailed) as caught:
        fetcher.fetch(f"{image_host.url}{path}", download_dir)

    assert (caught.value.code, caught.value.retryable) == (code, retryable)
    assert image_host.url in str(caught.value)
    assert image_host.hits(path) == tries
    assert files_in(download_dir) == []


def test_html_served_as_jpeg_is_not_an_image(
    fetcher: Fetcher, image_host: Host, download_dir: Path
) -> None:
    with pytest.raises(FetchFailed, match="not an image") as caught:
        fetcher.fetch(f"{image_host.url}/page.jpg", download_dir)
    assert caught.value.code == "not_an_image"


def test_refuses_declared_oversize_before_reading_body(
    fetcher: Fetcher, image_host: Host, download_dir: Path
) -> None:
    with pytest.raises(FetchFailed, match=r"file is 200 MB \(limit 1 MB\)"):
        fetcher.fetch(f"{image_host.url}/huge.jpg", download_dir)
    # Whatever the server managed to push into socket buffers, it is nowhere near 200 MB.
    assert image_host.state.huge_bytes_sent < 32 * 1024 * 1024


def test_streams_to_disk_in_bounded_memory_until_cap(
    tmp_path: Path, image_host: Host, download_dir: Path
) -> None:
    # Read 48 MB of a body that never declares its size: holding it in memory would show up
    # as a peak over 48 MB. (The threaded fake server itself accounts for about 10 MB.)
    settings = make_settings(tmp_path, download_max_bytes=48 * 1024 * 1024)
    started = time.monotonic()
    tracemalloc.start()
    try:
        with Fetcher(settings) as fetcher, pytest.raises(FetchFailed) as caught:
            fetcher.fetch(f"{image_host.url}/huge-unsized.jpg", download_dir)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert caught.value.code == "too_large"
    # Stopped at the first piece past the cap (a piece is one socket read, 64 KiB at most).
    assert re.search(r"download stopped at 48(\.1)? MB \(limit 48 MB\)", str(caught.value))
    assert peak < 24 * 1024 * 1024
    assert time.monotonic() - started < 10
    assert image_host.state.huge_bytes_sent < 96 * 1024 * 1024
    assert files_in(download_dir) == []


def test_read_timeout_fails_retryable_without_trying_again_this_run(
    fetcher: Fetcher, image_host: Host, download_dir: Path, fetch_sleeps: Sleeps
) -> None:
    # A host that stalled once would hold the run again: a later run tries it (the pipeline).
    with pytest.raises(FetchFailed, match="timed out") as caught:
        fetcher.fetch(f"{image_host.url}/slow.jpg", download_dir)

    assert (caught.value.code, caught.value.retryable) == ("timeout", True)
    assert image_host.hits("/slow.jpg") == 1
    assert fetch_sleeps == []
    assert files_in(download_dir) == []


def test_retries_server_error_then_succeeds(
    fetcher: Fetcher, image_host: Host, download_dir: Path, fetch_sleeps: Sleeps
) -> None:
    got = fetcher.fetch(f"{image_host.url}/flaky.jpg", download_dir)

    assert got.kind == "jpeg"
    assert image_host.hits("/flaky.jpg") == 2
    assert len(fetch_sleeps) == 1 and 0.005 <= fetch_sleeps[0] <= 0.01


def test_honours_retry_after_on_429(
    fetcher: Fetcher, image_host: Host, download_dir: Path, fetch_sleeps: Sleeps
) -> None:
    got = fetcher.fetch(f"{image_host.url}/rate-limited.jpg", download_dir)

    assert got.kind == "jpeg"
    assert fetch_sleeps == [7.0]


def test_long_retry_after_fails_retryable_without_waiting(
    tmp_path: Path, download_dir: Path, fetch_sleeps: Sleeps
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, headers={"Retry-After": "3600"})

    client = httpx.Client(transport=httpx.MockTransport(handler))
    fetcher = Fetcher(make_settings(tmp_path), client, sleep=fetch_sleeps)
    with client, fetcher, pytest.raises(FetchFailed, match="HTTP 503") as caught:
        fetcher.fetch("https://images.example/a.jpg", download_dir)

    assert (caught.value.retryable, caught.value.retry_after) == (True, 3600.0)
    assert fetch_sleeps == []


def test_not_found_fails_at_once_with_status(
    fetcher: Fetcher, image_host: Host, download_dir: Path, fetch_sleeps: Sleeps
) -> None:
    with pytest.raises(FetchFailed, match="HTTP 404"):
        fetcher.fetch(f"{image_host.url}/missing.jpg", download_dir)
    assert fetch_sleeps == []


def test_unknown_host_fails_without_retry(
    tmp_path: Path, download_dir: Path, fetch_sleeps: Sleeps
) -> None:
    resolve = fake_resolver({})
    fetcher = Fetcher(make_settings(tmp_path), resolve_host=resolve, sleep=fetch_sleeps)
    with fetcher, pytest.raises(FetchFailed) as caught:
        fetcher.fetch("http://nowhere.example/a.jpg", download_dir)

    assert (caught.value.code, caught.value.retryable) == ("connection", False)
    assert fetch_sleeps == []
