"""Search by URL: the server fetches the image through the SSRF-guarded downloader and searches
by it; a private address, a redirect to one, an HTML page, an oversize body and a decompression
bomb are each refused with a clear message, and nothing is stored."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from flask import Flask, Response, redirect
from flask.testing import FlaskClient

from scenery.config import Settings
from scenery.fetch import Fetcher
from tests.badfiles import decompression_bomb
from tests.fakes.embedders import solid
from tests.fakes.serving import serve
from tests.helpers import PALETTE, colour_gallery

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
UPLOAD_LIMIT = 200_000


def png(colour: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    solid(colour, size).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def host() -> Iterator[str]:
    """A local file server: an image, a web page, a large file, a bomb and a redirect."""
    files = Flask("files")

    @files.get("/blue.png")
    def blue() -> Response:
        return Response(png((30, 40, 200)), mimetype="image/png")

    @files.get("/page.html")
    def page() -> Response:
        return Response("<html><body><img src=blue.png></body></html>", mimetype="text/html")

    @files.get("/big.png")
    def big() -> Response:
        return Response(png((1, 2, 3)) + b"\0" * UPLOAD_LIMIT, mimetype="image/png")

    @files.get("/bomb.png")
    def bomb() -> Response:
        return Response(decompression_bomb(), mimetype="image/png")

    @files.get("/to-private")
    def to_private() -> Response:
        return redirect("http://10.0.0.1/photo.jpg", code=302)  # type: ignore[return-value]

    with serve(files) as url:
        yield url


def fetching(settings: Settings, allow_private: bool) -> Settings:
    return settings.model_copy(
        update={"allow_private_urls": allow_private, "max_upload_bytes": UPLOAD_LIMIT}
    )


@pytest.fixture
def local(settings: Settings, tmp_path: Path) -> Iterator[FlaskClient]:
    """A gallery whose test setting lets it fetch from this machine's file server."""
    with colour_gallery(fetching(settings, True), tmp_path / "colours", PALETTE) as app:
        yield app.test_client()


@pytest.fixture
def guarded(settings: Settings, tmp_path: Path) -> Iterator[FlaskClient]:
    """A gallery as deployed: private addresses refused."""
    with colour_gallery(fetching(settings, False), tmp_path / "colours", PALETTE) as app:
        yield app.test_client()


def test_search_by_url_finds_what_looks_like_the_image(local: FlaskClient, host: str) -> None:
    answer = local.get(f"/api/search/url?url={host}/blue.png&k=2")
    body = answer.get_json()
    assert answer.status_code == 200, body
    assert body["url"] == f"{host}/blue.png"
    assert body["results"][0]["title"] == "blue.png"
    page = local.get(f"/search/image?url={host}/blue.png").get_data(as_text=True)
    assert "Closest matches" in page and page.find("blue.png") < page.find("red.png")
    filtered = local.get(f"/api/search/url?url={host}/blue.png&color=red").get_json()
    assert [hit["title"] for hit in filtered["results"]] == ["red.png"]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/page.html", "not an image"),
        ("/big.png", "(limit 200,000 bytes)"),
        ("/bomb.png", "decompression bomb"),
    ],
)
def test_what_is_not_a_usable_image_is_refused_with_its_reason(
    local: FlaskClient, host: str, path: str, message: str
) -> None:
    answer = local.get(f"/api/search/url?url={host}{path}")
    assert answer.status_code == 400
    assert message in answer.get_data(as_text=True).lower()


def test_a_private_address_is_refused_before_any_request(guarded: FlaskClient, host: str) -> None:
    answer = guarded.get(f"/api/search/url?url={host}/blue.png")
    text = answer.get_data(as_text=True)
    assert answer.status_code == 400 and "non-public address" in text and "private_address" in text
    page = guarded.get(f"/search/image?url={host}/blue.png")
    assert page.status_code == 400 and "non-public address" in page.get_data(as_text=True)


def test_a_redirect_to_a_private_address_is_refused(
    guarded: FlaskClient, settings: Settings
) -> None:
    # A public host (played by a mock transport at the HTTP boundary) redirects inwards.
    asked: list[str] = []

    def public_host(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        return httpx.Response(302, headers={"Location": "http://10.0.0.1/photo.jpg"})

    client = httpx.Client(transport=httpx.MockTransport(public_host), follow_redirects=False)
    ctx = guarded.application.extensions["scenery"]
    ctx.__dict__["fetcher"] = Fetcher(
        ctx.settings, client, resolve_host=lambda name, port: ["93.184.216.34"]
    )
    answer = guarded.get("/api/search/url?url=http://images.example/a.jpg")
    assert answer.status_code == 400 and "private_address" in answer.get_data(as_text=True)
    assert asked == ["http://images.example/a.jpg"]  # nothing asked of the private target


@pytest.mark.parametrize("url", ["", "ftp://example.org/a.jpg", "file:///etc/passwd"])
def test_bad_urls_are_400s(guarded: FlaskClient, url: str) -> None:
    answer = guarded.get("/api/search/url", query_string={"url": url})
    assert answer.status_code == 400


def test_the_search_by_image_page_applies_the_filters_in_its_address(
    local: FlaskClient, host: str
) -> None:
    page = local.get(f"/search/image?url={host}/blue.png&color=red").get_data(as_text=True)
    grid = page.split("Closest matches", 1)[1]
    assert "red.png" in grid and "blue.png" not in grid
    assert 'data-filter="color">red' in page
    form = local.get("/search/image?color=red").get_data(as_text=True)
    assert 'action="/search/image?color=red"' in form  # an upload keeps the filter
