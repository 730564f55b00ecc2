"""Absolute URLs come from SCENERY_PUBLIC_URL, never from the Host header a client sends."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from scenery.config import Settings, load_settings
from scenery.errors import ConfigError
from tests.fakes.embedders import ColourEmbedder, solid
from tests.helpers import PALETTE, import_colours, sqlite_settings
from web import create_app

EVIL = "evil.example"
SPOOFED = {"Host": EVIL, "X-Forwarded-Host": EVIL, "X-Forwarded-Proto": "https"}
BASE = "https://photos.example.org/gallery"
URL_KEYS = ("url", "thumb_url", "large_url", "page_url")


@pytest.fixture
def gallery(tmp_path: Path) -> Iterator[tuple[Settings, int]]:
    """SQLite settings and the id of a published image (the URLs do not depend on the database)."""
    settings = sqlite_settings(tmp_path)
    app = create_app(settings, embedder=ColourEmbedder())
    ids = import_colours(app.extensions["scenery"], tmp_path / "colours", PALETTE)
    app.extensions["scenery"].close()
    yield settings, ids["red"]


def build(settings: Settings, **changes: Any) -> Flask:
    return create_app(settings.model_copy(update=changes), embedder=ColourEmbedder())


def api_answers(client: FlaskClient, image_id: int, **kwargs: Any) -> list[dict[str, Any]]:
    """The JSON of every API endpoint that returns image URLs, as one client sees them."""
    upload = io.BytesIO()
    solid((220, 20, 20)).save(upload, "PNG")
    upload.seek(0)
    answers = [
        client.get("/api/images", **kwargs),
        client.get(f"/api/images/{image_id}", **kwargs),
        client.get(f"/api/images/{image_id}/similar", **kwargs),
        client.get("/api/search?q=red", **kwargs),
        client.post("/api/search/image", data={"image": (upload, "red.png")}, **kwargs),
    ]
    assert [a.status_code for a in answers] == [200] * 5
    return [a.get_json() for a in answers]


def urls_in(answers: list[dict[str, Any]]) -> list[str]:
    """Every image URL in the answers (listings, one image, and search results)."""
    found = []
    for answer in answers:
        for image in answer.get("images", answer.get("results", [answer])):
            found.extend(image[key] for key in URL_KEYS)
    return found


@pytest.mark.parametrize("proxies", [0, 1], ids=["direct", "behind-a-trusted-proxy"])
def test_a_spoofed_host_never_reaches_a_url(gallery: tuple[Settings, int], proxies: int) -> None:
    settings, image_id = gallery
    app = build(settings, trusted_proxies=proxies)
    client = app.test_client()
    answers = api_answers(client, image_id, headers=SPOOFED)
    assert EVIL not in json.dumps(answers)
    urls = urls_in(answers)
    assert len(urls) >= 4 * 12
    for url in urls:  # root-relative: the client resolves them against the address it used
        assert url.startswith("/") and not url.startswith("//"), url
    for url in set(urls):
        assert client.get(url).status_code == 200, url
    for path in ("/", f"/image/{image_id}", "/admin/", "/no/such/page"):
        response = client.get(path, headers=SPOOFED)
        assert EVIL not in response.get_data(as_text=True), path
        assert EVIL not in response.headers.get("Location", ""), path
    app.extensions["scenery"].close()


@pytest.mark.parametrize("mount", ["", "/gallery"], ids=["at-the-root", "under-a-prefix"])
def test_public_url_makes_every_absolute_url(gallery: tuple[Settings, int], mount: str) -> None:
    """Served at the root or under the path the public URL names (SCRIPT_NAME), the API's
    URLs are the public URL plus the route, whatever Host the request carried."""
    settings, image_id = gallery
    app = build(settings, public_url=BASE)
    client = app.test_client()
    environ = {"SCRIPT_NAME": mount}
    answers = api_answers(client, image_id, headers=SPOOFED, environ_overrides=environ)
    assert EVIL not in json.dumps(answers)
    urls = urls_in(answers)
    red = answers[1]
    assert red["page_url"] == f"{BASE}/image/{image_id}"
    assert red["thumb_url"].startswith(f"{BASE}/thumbs/400/")
    for url in urls:
        assert url.startswith(f"{BASE}/") and "/gallery/gallery/" not in url, url
    for url in set(urls):  # each names a route of this app
        route = url.removeprefix(BASE)
        assert client.get(route).status_code == 200, url
    app.extensions["scenery"].close()


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("https://photos.example.org/", "https://photos.example.org"),
        ("http://10.0.0.5:8000/scenery/", "http://10.0.0.5:8000/scenery"),
        ("", None),
    ],
)
def test_public_url_setting_is_kept_without_its_trailing_slash(given: str, kept: str) -> None:
    assert load_settings(public_url=given).public_url == kept


@pytest.mark.parametrize(
    "bad",
    ["photos.example.org", "ftp://photos.example.org", "https://", "https://x.org/?a=1",
     "https://user:pw@x.org", "https://x.org/#top", "/gallery"],
)  # fmt: skip
def test_public_url_must_be_an_absolute_http_url(bad: str) -> None:
    with pytest.raises(ConfigError, match="public_url"):
        load_settings(public_url=bad)
