"""The web gallery and JSON API through Flask's test client."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from scenery.config import Settings
from scenery.db import transaction
from scenery.library import get_image, set_status
from scenery.models import ImageStatus
from tests import badfiles
from tests.fakes.embedders import ColourEmbedder, solid
from tests.helpers import PALETTE, colour_gallery, csrf_token, import_colours
from web import create_app

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture
def app(settings: Settings, tmp_path: Path) -> Iterator[Flask]:
    with colour_gallery(settings, tmp_path / "colours", PALETTE) as application:
        yield application


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def ids(app: Flask) -> dict[str, int]:
    return app.config["IDS"]  # type: ignore[no-any-return]


def png(colour: tuple[int, int, int]) -> io.BytesIO:
    buffer = io.BytesIO()
    solid(colour).save(buffer, "PNG")
    buffer.seek(0)
    return buffer


def test_home_shows_newest_first_with_lazy_thumbnails(client: FlaskClient, app: Flask) -> None:
    page = client.get("/").get_data(as_text=True)
    positions = [page.find(f"/image/{ids(app)[c]}") for c in ("yellow", "blue", "green", "red")]
    assert all(p > 0 for p in positions) and positions == sorted(positions)
    assert page.count('loading="lazy"') == 4
    assert "4 photos" in page


def test_home_paginates(settings: Settings, tmp_path: Path) -> None:
    app = create_app(settings.model_copy(update={"page_size": 3}), embedder=ColourEmbedder())
    import_colours(app.extensions["scenery"], tmp_path / "c", PALETTE)
    client = app.test_client()
    first, second = client.get("/").get_data(as_text=True), client.get("/?page=2")
    assert first.count('class="tile"') == 3 and 'rel="next"' in first
    assert second.get_data(as_text=True).count('class="tile"') == 1
    assert client.get("/?page=3").status_code == 404
    assert client.get("/?page=zero").status_code == 400
    app.extensions["scenery"].close()


def test_empty_gallery_explains_how_to_import(settings: Settings) -> None:
    app = create_app(settings, embedder=ColourEmbedder())
    assert "scenery import PATH" in app.test_client().get("/").get_data(as_text=True)
    app.extensions["scenery"].close()


def test_image_page_shows_facts_and_similar_images(client: FlaskClient, app: Flask) -> None:
    page = client.get(f"/image/{ids(app)['yellow']}").get_data(as_text=True)
    assert "96 &times; 64 px" in page and "yellow.png" in page
    assert f"/image/{ids(app)['red']}" in page  # a similar image
    similar, colours = page.split('class="similar similar-colours"')
    assert 'class="similar similar-photos"' in similar
    assert similar.count('class="tile"') == 3  # the image itself is not among them
    assert "Nothing in these colours yet." in colours  # no other yellow photo
    assert 'href="/?color=yellow">yellow</a>' in page  # its colour, linking to the filter


def test_search_page_keeps_the_query_and_ranks(client: FlaskClient, app: Flask) -> None:
    page = client.get("/search?q=blue+sky").get_data(as_text=True)
    assert 'value="blue sky"' in page
    assert page.find(f"/image/{ids(app)['blue']}") < page.find(f"/image/{ids(app)['red']}")


def test_api_search_returns_scored_results_in_order(client: FlaskClient, app: Flask) -> None:
    body = client.get("/api/search?q=green&k=3").get_json()
    results = body["results"]
    assert body["k"] == 3 and len(results) == 3
    assert results[0]["id"] == ids(app)["green"]
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)
    for key in ("id", "score", "url", "thumb_url", "width", "height", "title"):
        assert key in results[0]
    assert results[0]["thumb_url"].endswith(".jpg") and results[0]["width"] == 96


@pytest.mark.parametrize(
    "query", ["", "q=", "q=x&k=0", "q=x&k=abc", "q=x&k=100000", "q=" + "a" * 301]
)
def test_api_search_rejects_bad_parameters(client: FlaskClient, query: str) -> None:
    response = client.get(f"/api/search?{query}")
    assert response.status_code == 400
    assert response.get_json()["status"] == 400


def test_api_lists_and_shows_images(client: FlaskClient, app: Flask) -> None:
    listing = client.get("/api/images?page=1&per_page=2").get_json()
    assert listing["total"] == 4 and listing["pages"] == 2 and len(listing["images"]) == 2
    one = client.get(f"/api/images/{ids(app)['red']}").get_json()
    assert one["title"] == "red.png" and one["source"] == {"kind": "local"}
    assert one["published_at"].endswith("+00:00")
    assert client.get("/api/images/99999").status_code == 404


def test_api_similar_excludes_the_image(client: FlaskClient, app: Flask) -> None:
    body = client.get(f"/api/images/{ids(app)['red']}/similar?k=10").get_json()
    returned = [r["id"] for r in body["results"]]
    assert ids(app)["red"] not in returned and len(returned) == 3


def test_api_image_search_finds_the_closest(client: FlaskClient, app: Flask) -> None:
    response = client.post(
        "/api/search/image?k=2", data={"image": (png((210, 30, 25)), "query.png")}
    )
    results = response.get_json()["results"]
    assert response.status_code == 200 and results[0]["id"] == ids(app)["red"]


def test_image_search_page_shows_matches(client: FlaskClient, app: Flask) -> None:
    token = csrf_token(client, "/search/image")
    form = {"image": (png((20, 30, 200)), "q.png"), "csrf_token": token}
    response = client.post("/search/image", data=form)
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert page.find(f"/image/{ids(app)['blue']}") < page.find(f"/image/{ids(app)['red']}")


def test_image_search_refuses_bad_uploads(client: FlaskClient) -> None:
    text = client.post(
        "/api/search/image", data={"image": (io.BytesIO(badfiles.text_file()), "a.jpg")}
    )
    assert text.status_code == 400 and "not an image" in text.get_json()["message"]
    bomb = client.post(
        "/api/search/image", data={"image": (io.BytesIO(badfiles.decompression_bomb()), "b.png")}
    )
    assert bomb.status_code == 400 and "decompression bomb" in bomb.get_json()["message"]
    missing = client.post("/api/search/image", data={})
    assert missing.status_code == 400
    token = csrf_token(client, "/search/image")
    junk = {"image": (io.BytesIO(b"junk"), "c.jpg"), "csrf_token": token}
    page = client.post("/search/image", data=junk)
    assert page.status_code == 400 and "Unusable image" in page.get_data(as_text=True)


def test_upload_size_is_limited(settings: Settings) -> None:
    app = create_app(
        settings.model_copy(update={"max_upload_bytes": 1000}), embedder=ColourEmbedder()
    )
    client = app.test_client()
    big = io.BytesIO(b"\xff" * 200_000)
    response = client.post("/api/search/image", data={"image": (big, "big.jpg")})
    assert response.status_code == 413 and response.get_json()["status"] == 413
    medium = io.BytesIO(b"\xff" * 5_000)  # inside the multipart slack, still over the limit
    response = client.post("/api/search/image", data={"image": (medium, "m.jpg")})
    assert response.status_code == 400 and "larger than" in response.get_json()["message"]
    app.extensions["scenery"].close()


def test_media_is_served_publicly_and_traversal_is_refused(client: FlaskClient, app: Flask) -> None:
    image = client.get(f"/api/images/{ids(app)['red']}").get_json()
    for key in ("url", "thumb_url", "large_url"):
        response = client.get(image[key])
        assert response.status_code == 200
        assert response.headers["Cache-Control"].startswith("public")  # tests/test_cache_policy.py
    thumb = client.get(image["thumb_url"])
    assert Image.open(io.BytesIO(thumb.data)).format == "JPEG"
    for bad in (
        "/media/..%2f..%2fscenery.db",
        "/media/../scenery.db",
        "/thumbs/400/abc.jpg",
        "/thumbs/999/" + "a" * 64 + ".jpg",
        "/media/" + "a" * 64 + ".jpg",
    ):
        assert client.get(bad).status_code == 404


def test_page_thumbnail_is_rendered_on_first_request(client: FlaskClient, app: Flask) -> None:
    image = client.get(f"/api/images/{ids(app)['blue']}").get_json()
    storage = app.extensions["scenery"].storage
    sha = image["url"].rsplit("/", 1)[1].split(".")[0]
    assert not storage.thumb_path(sha, 1600).exists()  # import wrote only the grid size
    first = client.get(image["large_url"])
    assert first.status_code == 200 and storage.thumb_path(sha, 1600).exists()
    assert Image.open(io.BytesIO(first.data)).size == (96, 64)  # never upscaled
    assert client.get(image["large_url"]).data == first.data


def test_not_found_page_looks_like_the_site(client: FlaskClient) -> None:
    response = client.get("/image/424242")
    page = response.get_data(as_text=True)
    assert response.status_code == 404
    assert 'class="site-header"' in page and "Back to the gallery" in page
    assert client.get("/no/such/page").status_code == 404


def test_hostile_titles_are_escaped_everywhere(client: FlaskClient, app: Flask) -> None:
    ctx = app.extensions["scenery"]
    with transaction(ctx.sessions) as session:
        image = get_image(session, ids(app)["red"])
        image.source, image.reddit_title = "reddit", HOSTILE
        image.reddit_author, image.reddit_subreddit = "<b>author</b>", "EarthPorn"
        image.reddit_permalink = "/r/EarthPorn/comments/abc/x/"
        image.reddit_created_at = datetime(2024, 5, 1, tzinfo=UTC)
    for url in ("/", f"/image/{ids(app)['red']}", "/search?q=red", f"/image/{ids(app)['yellow']}"):
        page = client.get(url).get_data(as_text=True)
        assert "<script>alert" not in page and "onerror=alert(1)>" not in page, url
        assert "&lt;script&gt;" in page, url
    page = client.get(f"/image/{ids(app)['red']}").get_data(as_text=True)
    assert "https://www.reddit.com/r/EarthPorn/comments/abc/x/" in page
    assert "u/&lt;b&gt;author&lt;/b&gt;" in page
    api = client.get(f"/api/images/{ids(app)['red']}").get_json()
    assert api["title"] == HOSTILE and api["source"]["subreddit"] == "EarthPorn"


def test_pages_send_security_headers(client: FlaskClient) -> None:
    headers = client.get("/").headers
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_healthz_counts_published_images(client: FlaskClient, app: Flask) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok", "images": 4}
    ctx = app.extensions["scenery"]
    with transaction(ctx.sessions) as session:
        set_status(session, get_image(session, ids(app)["red"]), ImageStatus.DELETED)
    assert client.get("/healthz").get_json()["images"] == 3
    assert ids(app)["red"] not in [
        r["id"] for r in client.get("/api/search?q=red").get_json()["results"]
    ]


def test_search_reports_an_unloadable_model_as_unavailable(settings: Settings) -> None:
    app = create_app(
        settings.model_copy(update={"clip_model": "ViT-B-32", "clip_pretrained": "/missing/w.pt"})
    )
    response = app.test_client().get("/api/search?q=lake")
    assert response.status_code == 503
    assert "SCENERY_CLIP_PRETRAINED" in response.get_json()["message"]
    app.extensions["scenery"].close()
