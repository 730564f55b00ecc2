"""Safe download: caps, timeouts, retries, type sniffing, the SSRF guard and atomic files."""

from __future__ import annotations

import hashlib
import socket
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ingest.fetch import MAX_TRIES, Fetched, Fetcher, FetchFailed, sniff
from ingest.netguard import BlockedAddress, checked_addresses, is_public_address, system_resolve
from scenery.config import Settings
from scenery.errors import ImageRejected
from scenery.imaging import decode
from tests.fakes.files_server import FileServerState, make_files_app
from tests.fakes.serving import serve

PUBLIC_IP = "93.184.216.34"


class Host:
    """The fake image host: its base URL and what it observed."""

    def __init__(self, url: str, state: FileServerState, jpeg: bytes) -> None:
        self.url = url
        self.state = state
        self.jpeg = jpeg
        self.port = int(url.rsplit(":", 1)[1])

    def hits(self, path: str) -> int:
        return self.state.hits[path]


@pytest.fixture(scope="module")
def served(photos: list[Path]) -> Iterator[Host]:
    jpeg = photos[0].read_bytes()
    app, state = make_files_app(jpeg)
    with serve(app) as url:
        yield Host(url, state, jpeg)


@pytest.fixture
def host(served: Host) -> Host:
    """The module's fake host, with its observations cleared for this test."""
    served.state.reset()
    return served


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "downloads"


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "allow_private_urls": True,
        "retry_backoff_base": 0.01,
        "retry_backoff_max": 0.02,
        "download_read_timeout": 0.3,
        "download_connect_timeout": 0.5,
        "download_max_bytes": 1024 * 1024,
    }
    return Settings(**(values | overrides))


class Sleeps(list[float]):
    """Records the waits a fetcher asks for instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def fetcher(tmp_path: Path, sleeps: Sleeps) -> Iterator[Fetcher]:
    with Fetcher(make_settings(tmp_path), sleep=sleeps) as f:
        yield f


def fake_resolver(table: dict[str, list[str]], calls: list[str] | None = None) -> Any:
    def resolve(name: str, port: int) -> list[str]:
        if calls is not None:
            calls.append(name)
        if name not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return table[name]

    return resolve


def files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


# -- happy paths ------------------------------------------------------------------------------


def test_downloads_jpeg_named_by_content_hash(fetcher: Fetcher, host: Host, dest: Path) -> None:
    got = fetcher.fetch(f"{host.url}/photo.jpg", dest)

    digest = hashlib.sha256(host.jpeg).hexdigest()
    assert got == Fetched(
        url=f"{host.url}/photo.jpg",
        path=dest / f"{digest}.jpg",
        size=len(host.jpeg),
        sha256=digest,
        content_type="image/jpeg",
        kind="jpeg",
    )
    assert got.path.read_bytes() == host.jpeg
    assert files_in(dest) == [f"{digest}.jpg"]


def test_downloads_png_with_png_extension(fetcher: Fetcher, host: Host, dest: Path) -> None:
    got = fetcher.fetch(f"{host.url}/image.png", dest)

    assert (got.kind, got.path.suffix) == ("png", ".png")
    assert decode(got.path.read_bytes(), max_pixels=10_000).format == "PNG"


def test_same_content_twice_keeps_one_file(fetcher: Fetcher, host: Host, dest: Path) -> None:
    first = fetcher.fetch(f"{host.url}/photo.jpg", dest)
    second = fetcher.fetch(f"{host.url}/photo.jpg?again=1", dest)

    assert second.path == first.path
    assert files_in(dest) == [first.path.name]


def test_follows_redirect_chain_to_image(fetcher: Fetcher, host: Host, dest: Path) -> None:
    got = fetcher.fetch(f"{host.url}/chain/4", dest)

    assert got.url == f"{host.url}/photo.jpg"
    assert [host.hits(f"/chain/{n}") for n in range(5)] == [1] * 5


def test_truncated_file_downloads_and_decode_rejects_it(
    fetcher: Fetcher, host: Host, dest: Path
) -> None:
    # The transfer is complete and starts like a JPEG, so the fetcher accepts it; telling a
    # broken image from a whole one is decode's job, in the pipeline.
    got = fetcher.fetch(f"{host.url}/truncated.jpg", dest)

    assert got.size == len(host.jpeg) // 2
    with pytest.raises(ImageRejected, match="truncated or corrupt"):
        decode(got.path.read_bytes(), max_pixels=10**9)


# -- failures ---------------------------------------------------------------------------------


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
    fetcher: Fetcher, host: Host, dest: Path, path: str, code: str, retryable: bool, tries: int
) -> None:
    with pytest.raises(FetchFailed) as caught:
        fetcher.fetch(f"{host.url}{path}", dest)

    assert (caught.value.code, caught.value.retryable) == (code, retryable)
    assert host.url in str(caught.value)
    assert host.hits(path) == tries
    assert files_in(dest) == []


def test_html_served_as_jpeg_is_not_an_image(fetcher: Fetcher, host: Host, dest: Path) -> None:
    with pytest.raises(FetchFailed, match="not an image") as caught:
        fetcher.fetch(f"{host.url}/page.jpg", dest)
    assert caught.value.code == "not_an_image"


def test_refuses_declared_oversize_before_reading_body(
    fetcher: Fetcher, host: Host, dest: Path
) -> None:
    with pytest.raises(FetchFailed, match=r"file is 200 MB \(limit 1 MB\)"):
        fetcher.fetch(f"{host.url}/huge.jpg", dest)
    # Whatever the server managed to push into socket buffers, it is nowhere near 200 MB.
    assert host.state.huge_bytes_sent < 32 * 1024 * 1024


def test_streams_to_disk_in_bounded_memory_until_cap(
    tmp_path: Path, host: Host, dest: Path
) -> None:
    # Read 48 MB of a body that never declares its size: holding it in memory would show up
    # as a peak over 48 MB. (The threaded fake server itself accounts for about 10 MB.)
    settings = make_settings(tmp_path, download_max_bytes=48 * 1024 * 1024)
    started = time.monotonic()
    tracemalloc.start()
    try:
        with Fetcher(settings) as fetcher, pytest.raises(FetchFailed) as caught:
            fetcher.fetch(f"{host.url}/huge-unsized.jpg", dest)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert caught.value.code == "too_large"
    assert "download stopped at 48.1 MB (limit 48 MB)" in str(caught.value)
    assert peak < 24 * 1024 * 1024
    assert time.monotonic() - started < 10
    assert host.state.huge_bytes_sent < 96 * 1024 * 1024
    assert files_in(dest) == []


def test_read_timeout_is_retried_then_fails(
    fetcher: Fetcher, host: Host, dest: Path, sleeps: Sleeps
) -> None:
    with pytest.raises(FetchFailed, match="timed out") as caught:
        fetcher.fetch(f"{host.url}/slow.jpg", dest)

    assert (caught.value.code, caught.value.retryable) == ("timeout", True)
    assert host.hits("/slow.jpg") == MAX_TRIES
    assert len(sleeps) == MAX_TRIES - 1
    assert all(0.005 <= s <= 0.02 for s in sleeps)
    assert files_in(dest) == []


def test_retries_server_error_then_succeeds(
    fetcher: Fetcher, host: Host, dest: Path, sleeps: Sleeps
) -> None:
    got = fetcher.fetch(f"{host.url}/flaky.jpg", dest)

    assert got.kind == "jpeg"
    assert host.hits("/flaky.jpg") == 2
    assert len(sleeps) == 1 and 0.005 <= sleeps[0] <= 0.01


def test_honours_retry_after_on_429(
    fetcher: Fetcher, host: Host, dest: Path, sleeps: Sleeps
) -> None:
    got = fetcher.fetch(f"{host.url}/rate-limited.jpg", dest)

    assert got.kind == "jpeg"
    assert sleeps == [7.0]


def test_long_retry_after_fails_retryable_without_waiting(
    tmp_path: Path, dest: Path, sleeps: Sleeps
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, headers={"Retry-After": "3600"})

    client = httpx.Client(transport=httpx.MockTransport(handler))
    fetcher = Fetcher(make_settings(tmp_path), client, sleep=sleeps)
    with client, fetcher, pytest.raises(FetchFailed, match="HTTP 503") as caught:
        fetcher.fetch("https://images.example/a.jpg", dest)

    assert (caught.value.retryable, caught.value.retry_after) == (True, 3600.0)
    assert sleeps == []


def test_not_found_fails_at_once_with_status(
    fetcher: Fetcher, host: Host, dest: Path, sleeps: Sleeps
) -> None:
    with pytest.raises(FetchFailed, match="HTTP 404"):
        fetcher.fetch(f"{host.url}/missing.jpg", dest)
    assert sleeps == []


def test_unknown_host_fails_without_retry(tmp_path: Path, dest: Path, sleeps: Sleeps) -> None:
    resolve = fake_resolver({})
    fetcher = Fetcher(make_settings(tmp_path), resolve_host=resolve, sleep=sleeps)
    with fetcher, pytest.raises(FetchFailed) as caught:
        fetcher.fetch("http://nowhere.example/a.jpg", dest)

    assert (caught.value.code, caught.value.retryable) == ("connection", False)
    assert sleeps == []


# -- URL and address guard --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("file:///etc/passwd", "unsupported_scheme"),
        ("ftp://images.example/a.jpg", "unsupported_scheme"),
        ("gopher://images.example/", "unsupported_scheme"),
        ("http://user:secret@images.example/a.jpg", "bad_url"),
        ("images.example/a.jpg", "bad_url"),
        ("http:///a.jpg", "bad_url"),
    ],
)
def test_refuses_bad_urls_before_any_request(
    tmp_path: Path, dest: Path, url: str, code: str
) -> None:
    calls: list[str] = []
    resolve = fake_resolver({"images.example": [PUBLIC_IP]}, calls)
    fetcher = Fetcher(make_settings(tmp_path), resolve_host=resolve)
    with fetcher, pytest.raises(FetchFailed) as caught:
        fetcher.fetch(url, dest)

    assert caught.value.code == code
    assert "secret" not in str(caught.value)
    assert calls == []


def test_refuses_redirect_to_another_scheme(fetcher: Fetcher, host: Host, dest: Path) -> None:
    with pytest.raises(FetchFailed) as caught:
        fetcher.fetch(f"{host.url}/redirect?to=file:///etc/passwd", dest)
    assert caught.value.code == "unsupported_scheme"


def test_pinned_transport_connects_via_injected_resolver(
    tmp_path: Path, host: Host, dest: Path
) -> None:
    calls: list[str] = []
    resolve = fake_resolver({"images.example": ["127.0.0.1"]}, calls)
    with Fetcher(make_settings(tmp_path), resolve_host=resolve) as fetcher:
        got = fetcher.fetch(f"http://images.example:{host.port}/photo.jpg", dest)

    assert got.url == f"http://images.example:{host.port}/photo.jpg"
    assert calls == ["images.example"]


@pytest.mark.parametrize(
    "addresses", [["127.0.0.1"], ["10.1.2.3"], [PUBLIC_IP, "192.168.0.7"], ["::ffff:127.0.0.1"]]
)
def test_pinned_transport_refuses_private_resolution_before_connecting(
    tmp_path: Path, host: Host, dest: Path, addresses: list[str]
) -> None:
    settings = make_settings(tmp_path, allow_private_urls=False)
    resolve = fake_resolver({"images.example": addresses})
    fetcher = Fetcher(settings, resolve_host=resolve)
    with fetcher, pytest.raises(FetchFailed, match="refusing non-public address") as caught:
        fetcher.fetch(f"http://images.example:{host.port}/photo.jpg", dest)

    assert (caught.value.code, caught.value.retryable) == ("private_address", False)
    assert sum(host.state.hits.values()) == 0
    assert files_in(dest) == []


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1/",
        "http://10.0.0.1/admin",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:8080/",
        "http://0.0.0.0/",
        "http://[fd00::1]/",
        "http://internal.example/",  # a name that resolves to a private address
    ],
)
def test_refuses_redirect_to_private_address(tmp_path: Path, dest: Path, target: str) -> None:
    # A caller-supplied client is not pinned, so the fetcher checks each hop itself; a mock
    # transport plays the public host, and nothing may ask it for the private target.
    requested: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requested.append(str(request.url))
        return httpx.Response(302, headers={"Location": target})

    settings = make_settings(tmp_path, allow_private_urls=False)
    resolve = fake_resolver({"images.example": [PUBLIC_IP], "internal.example": ["10.9.8.7"]})
    client = httpx.Client(transport=httpx.MockTransport(handler), follow_redirects=False)
    fetcher = Fetcher(settings, client, resolve_host=resolve)
    with client, fetcher, pytest.raises(FetchFailed) as caught:
        fetcher.fetch("http://images.example/a.jpg", dest)

    assert caught.value.code == "private_address"
    assert requested == ["http://images.example/a.jpg"]


@pytest.mark.parametrize(
    ("address", "public"),
    [
        (PUBLIC_IP, True),
        ("8.8.8.8", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("172.16.5.4", False),
        ("192.168.1.1", False),
        ("100.64.0.1", False),  # carrier-grade NAT
        ("169.254.169.254", False),  # cloud metadata
        ("0.0.0.0", False),
        ("224.0.0.1", False),  # multicast, which Python 3.11 calls global
        ("240.0.0.1", False),
        ("255.255.255.255", False),
        ("192.0.2.1", False),  # documentation
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fe80::1%eth0", False),
        ("fc00::1", False),
        ("fd12:3456::1", False),
        ("fec0::1", False),  # deprecated site-local
        ("ff02::1", False),
        ("2001:db8::1", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped
        ("::ffff:169.254.169.254", False),
        ("::ffff:8.8.8.8", True),
        ("2002:7f00:1::", False),  # 6to4 around 127.0.0.1
        ("64:ff9b::a00:1", False),  # NAT64 around 10.0.0.1
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False),  # Teredo
        ("not an address", False),
    ],
)
def test_is_public_address(address: str, public: bool) -> None:
    assert is_public_address(address) is public


@pytest.mark.parametrize("host", ["localhost", "2130706433", "0x7f.1", "017700000001"])
def test_system_resolver_catches_disguised_loopback(host: str) -> None:
    # getaddrinfo reads these numeric forms itself, with no DNS query.
    with pytest.raises(BlockedAddress):
        checked_addresses(host, 80, system_resolve, allow_private=False)


def test_checked_addresses_returns_all_public_addresses() -> None:
    resolve = fake_resolver({"images.example": [PUBLIC_IP, "2606:2800:220:1::1"]})
    got = checked_addresses("images.example", 443, resolve, allow_private=False)
    assert got == [PUBLIC_IP, "2606:2800:220:1::1"]


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"\xff\xd8\xff\xe1rest", "jpeg"),
        (b"\x89PNG\r\n\x1a\nrest", "png"),
        (b"GIF89a...", "gif"),
        (b"GIF87a...", "gif"),
        (b"RIFF\x10\x00\x00\x00WEBPVP8 ", "webp"),
        (b"RIFF\x10\x00\x00\x00WAVEfmt ", None),
        (b"BM\x36\x00", "bmp"),
        (b"II*\x00\x08\x00", "tiff"),
        (b"MM\x00*\x00\x00", "tiff"),
        (b"<!doctype html>", None),
        (b"", None),
    ],
)
def test_sniff_reads_magic_bytes(head: bytes, kind: str | None) -> None:
    assert sniff(head) == kind


# -- many at once -----------------------------------------------------------------------------


def test_fetch_many_yields_every_result_with_bounded_concurrency(
    tmp_path: Path, host: Host, dest: Path
) -> None:
    settings = make_settings(tmp_path, download_concurrency=2)
    good = [f"{host.url}/busy.jpg?n={n}" for n in range(6)]
    bad = [f"{host.url}/missing.jpg", f"{host.url}/page.jpg", "ftp://images.example/a.jpg"]
    with Fetcher(settings) as fetcher:
        results = dict(fetcher.fetch_many(good + bad, dest))

    assert sorted(results) == sorted(good + bad)
    assert all(isinstance(results[url], Fetched) for url in good)
    codes = [r.code for url in bad if isinstance(r := results[url], FetchFailed)]
    assert codes == ["http_status", "not_an_image", "unsupported_scheme"]
    assert host.state.max_in_flight == 2
    assert files_in(dest) == [f"{hashlib.sha256(host.jpeg).hexdigest()}.jpg"]
