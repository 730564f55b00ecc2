"""The download's URL and address guard: schemes, credentials, redirects, private and
disguised addresses, DNS answers pinned at connect time."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from scenery.fetch import Fetcher, FetchFailed
from scenery.netguard import BlockedAddress, checked_addresses, is_public_address, system_resolve
from tests.fetch_host import PUBLIC_IP, Host, fake_resolver, files_in, make_settings


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
    tmp_path: Path, download_dir: Path, url: str, code: str
) -> None:
    calls: list[str] = []
    resolve = fake_resolver({"images.example": [PUBLIC_IP]}, calls)
    fetcher = Fetcher(make_settings(tmp_path), resolve_host=resolve)
    with fetcher, pytest.raises(FetchFailed) as caught:
        fetcher.fetch(url, download_dir)

    assert caught.value.code == code
    assert "secret" not in str(caught.value)
    assert calls == []


def test_refuses_redirect_to_another_scheme(
    fetcher: Fetcher, image_host: Host, download_dir: Path
) -> None:
    with pytest.raises(FetchFailed) as caught:
        fetcher.fetch(f"{image_host.url}/redirect?to=file:///etc/passwd", download_dir)
    assert caught.value.code == "unsupported_scheme"


def test_pinned_transport_connects_via_injected_resolver(
    tmp_path: Path, image_host: Host, download_dir: Path
) -> None:
    calls: list[str] = []
    resolve = fake_resolver({"images.example": ["127.0.0.1"]}, calls)
    with Fetcher(make_settings(tmp_path), resolve_host=resolve) as fetcher:
        got = fetcher.fetch(f"http://images.example:{image_host.port}/photo.jpg", download_dir)

    assert got.url == f"http://images.example:{image_host.port}/photo.jpg"
    assert calls == ["images.example"]


@pytest.mark.parametrize(
    "addresses", [["127.0.0.1"], ["10.1.2.3"], [PUBLIC_IP, "192.168.0.7"], ["::ffff:127.0.0.1"]]
)
def test_pinned_transport_refuses_private_resolution_before_connecting(
    tmp_path: Path, image_host: Host, download_dir: Path, addresses: list[str]
) -> None:
    settings = make_settings(tmp_path, allow_private_urls=False)
    resolve = fake_resolver({"images.example": addresses})
    fetcher = Fetcher(settings, resolve_host=resolve)
    with fetcher, pytest.raises(FetchFailed, match="refusing non-public address") as caught:
        fetcher.fetch(f"http://images.example:{image_host.port}/photo.jpg", download_dir)

    assert (caught.value.code, caught.value.retryable) == ("private_address", False)
    assert sum(image_host.state.hits.values()) == 0
    assert files_in(download_dir) == []


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
def test_refuses_redirect_to_private_address(
    tmp_path: Path, download_dir: Path, target: str
) -> None:
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
        fetcher.fetch("http://images.example/a.jpg", download_dir)

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
