"""How long caches keep published files: bounded, then revalidated, so that unpublishing or
deleting an image takes effect in shared caches too (web/media.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from scenery.db import transaction
from scenery.review import approve, delete, remove_files, unpublish
from tests.fakes.embedders import ColourEmbedder
from tests.helpers import PALETTE, import_colours, sqlite_settings
from web import create_app

FILES = ("url", "thumb_url", "large_url")  # the original, the grid and the page-size thumbnail


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    """A gallery on SQLite: the policy is the web layer's, the same on every database."""
    settings = sqlite_settings(tmp_path)
    application = create_app(settings, embedder=ColourEmbedder())
    application.config["IDS"] = import_colours(
        application.extensions["scenery"], tmp_path / "colours", PALETTE
    )
    yield application
    application.extensions["scenery"].close()


def file_urls(client: FlaskClient, image_id: int) -> list[str]:
    image = client.get(f"/api/images/{image_id}").get_json()
    return [image[key] for key in FILES]


def test_published_files_are_public_for_an_hour_then_revalidated(app: Flask) -> None:
    client = app.test_client()
    for url in file_urls(client, app.config["IDS"]["red"]):
        first = client.get(url)
        assert first.status_code == 200 and first.data
        assert first.headers["Cache-Control"] == "public, max-age=3600, must-revalidate", url
        assert "Expires" not in first.headers  # nothing says "a year" beside Cache-Control
        etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
        for asked in ({"If-None-Match": etag}, {"If-Modified-Since": modified}):
            again = client.get(url, headers=asked)
            assert again.status_code == 304 and again.data == b"", (url, asked)
            assert again.headers["Cache-Control"].startswith("public, max-age=3600")


def test_an_unpublished_image_fails_revalidation_and_its_404_is_not_kept(app: Flask) -> None:
    """What a shared cache asks when its hour is up: the same ETag, no cookie. Once the image
    is unpublished the answer is a 404 (so the cache drops its copy) that no cache may store,
    and after it is published again the files come back at once."""
    client, ctx, image_id = app.test_client(), app.extensions["scenery"], app.config["IDS"]["red"]
    urls = file_urls(client, image_id)
    etags = {url: client.get(url).headers["ETag"] for url in urls}
    with transaction(ctx.sessions) as session:
        assert unpublish(session, [image_id], "owner")
    for url in urls:
        refused = client.get(url, headers={"If-None-Match": etags[url]})
        assert refused.status_code == 404, url
        assert refused.headers["Cache-Control"] == "no-store", url
    with transaction(ctx.sessions) as session:
        assert approve(session, [image_id], "owner")
    for url in urls:
        assert client.get(url, headers={"If-None-Match": etags[url]}).status_code == 304, url


def test_a_deleted_image_fails_revalidation(app: Flask) -> None:
    client, ctx, image_id = app.test_client(), app.extensions["scenery"], app.config["IDS"]["blue"]
    urls = file_urls(client, image_id)
    etags = {url: client.get(url).headers["ETag"] for url in urls}
    with transaction(ctx.sessions) as session:
        files = delete(session, [image_id], "owner")
    remove_files(ctx.storage, files)
    for url in urls:
        refused = client.get(url, headers={"If-None-Match": etags[url]})
        assert refused.status_code == 404 and refused.headers["Cache-Control"] == "no-store"


def test_the_cache_lifetime_is_a_setting(app: Flask, tmp_path: Path) -> None:
    settings = app.extensions["scenery"].settings.model_copy(update={"media_cache_seconds": 60})
    other = create_app(settings, embedder=ColourEmbedder())
    client = other.test_client()
    for url in file_urls(client, app.config["IDS"]["green"]):
        assert client.get(url).headers["Cache-Control"] == "public, max-age=60, must-revalidate"
    other.extensions["scenery"].close()
