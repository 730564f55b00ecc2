"""Safe download, what it gives: whole files named by content, redirects followed, the type
sniffed from the bytes, several at once. Failures: test_fetch_failures.py; the URL and
address guard: test_fetch_guard.py; the total deadline: test_fetch_deadline.py."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from scenery.errors import ImageRejected
from scenery.fetch import Fetched, Fetcher, FetchFailed, sniff
from scenery.imaging import decode
from tests.fetch_host import Host, files_in, make_settings


def test_downloads_jpeg_named_by_content_hash(
    fetcher: Fetcher, image_host: Host, download_dir: Path
) -> None:
    got = fetcher.fetch(f"{image_host.url}/photo.jpg", download_dir)

    digest = hashlib.sha256(image_host.jpeg).hexdigest()
    assert got == Fetched(
        url=f"{image_host.url}/photo.jpg",
        path=download_dir / f"{digest}.jpg",
        size=len(image_host.jpeg),
        sha256=digest,
        content_type="image/jpeg",
        kind="jpeg",
    )
    assert got.path.read_bytes() == image_host.jpeg
    assert files_in(download_dir) == [f"{digest}.jpg"]


def test_downloads_png_with_png_extension(
    fetcher: Fetcher, image_host: Host, download_dir: Path
) -> None:
    got = fetcher.fetch(f"{image_host.url}/image.png", download_dir)

    assert (got.kind, got.path.suffix) == ("png", ".png")
    assert decode(got.path.read_bytes(), 10_000).format == "PNG"


def test_same_content_twice_keeps_one_file(
    fetcher: Fetcher, image_host: Host, download_dir: Path
) -> None:
    first = fetcher.fetch(f"{image_host.url}/photo.jpg", download_dir)
    second = fetcher.fetch(f"{image_host.url}/photo.jpg?again=1", download_dir)

    assert second.path == first.path
    assert files_in(download_dir) == [first.path.name]


def test_follows_redirect_chain_to_image(
    fetcher: Fetcher, image_host: Host, download_dir: Path
) -> None:
    got = fetcher.fetch(f"{image_host.url}/chain/4", download_dir)

    assert got.url == f"{image_host.url}/photo.jpg"
    assert [image_host.hits(f"/chain/{n}") for n in range(5)] == [1] * 5


def test_truncated_file_downloads_and_decode_rejects_it(
    fetcher: Fetcher, image_host: Host, download_dir: Path
) -> None:
    # The transfer is complete and starts like a JPEG, so the fetcher accepts it; telling a
    # broken image from a whole one is decode's job, in the pipeline.
    got = fetcher.fetch(f"{image_host.url}/truncated.jpg", download_dir)

    assert got.size == len(image_host.jpeg) // 2
    with pytest.raises(ImageRejected, match="truncated or corrupt"):
        decode(got.path.read_bytes(), 10**9)


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
    tmp_path: Path, image_host: Host, download_dir: Path
) -> None:
    settings = make_settings(tmp_path, download_concurrency=2)
    good = [f"{image_host.url}/busy.jpg?n={n}" for n in range(6)]
    bad = [
        f"{image_host.url}/missing.jpg",
        f"{image_host.url}/page.jpg",
        "ftp://images.example/a.jpg",
    ]
    with Fetcher(settings) as fetcher:
        results = dict(fetcher.fetch_many(good + bad, download_dir))

    assert sorted(results) == sorted(good + bad)
    assert all(isinstance(results[url], Fetched) for url in good)
    codes = [r.code for url in bad if isinstance(r := results[url], FetchFailed)]
    assert codes == ["http_status", "not_an_image", "unsupported_scheme"]
    assert image_host.state.max_in_flight == 2
    assert files_in(download_dir) == [f"{hashlib.sha256(image_host.jpeg).hexdigest()}.jpg"]
