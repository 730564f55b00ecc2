"""Colour summaries: named shares and the leading colour, stored at import, the ``color`` filter,
similar by colour, and the migration that summarises images stored before it."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from sqlalchemy import select, update

from scenery.colours import NAMES, colour_shares, dominant
from scenery.config import Settings
from scenery.db import alembic_config, transaction
from scenery.models import Image as ImageRow
from tests.fakes.embedders import solid
from tests.helpers import colour_gallery

SOLIDS = {
    "red": (220, 20, 20),
    "orange": (255, 140, 0),
    "yellow": (230, 220, 30),
    "green": (20, 200, 30),
    "teal": (0, 180, 180),
    "blue": (20, 30, 210),
    "purple": (150, 40, 200),
    "pink": (255, 105, 180),
    "brown": (120, 70, 30),
    "black": (5, 5, 5),
    "white": (250, 250, 250),
    "gray": (128, 128, 128),
}


def split(top: tuple[int, int, int], bottom: tuple[int, int, int], share: float) -> Image.Image:
    """A photo whose top ``share`` is one colour and the rest another."""
    image = Image.new("RGB", (100, 100), bottom)
    image.paste(Image.new("RGB", (100, round(100 * share)), top), (0, 0))
    return image


@pytest.mark.parametrize("name", NAMES)
def test_each_named_colour_leads_a_photo_of_it(name: str) -> None:
    shares = colour_shares(solid(SOLIDS[name]))
    assert dominant(shares) == name
    assert shares[NAMES.index(name)] == 100 and sum(shares) == 100


def test_a_colour_leads_over_gray_black_and_white_from_a_fifth_of_the_photo() -> None:
    assert dominant(colour_shares(split(SOLIDS["green"], SOLIDS["gray"], 0.3))) == "green"
    assert dominant(colour_shares(split(SOLIDS["blue"], SOLIDS["white"], 0.1))) == "white"
    shares = colour_shares(split(SOLIDS["blue"], SOLIDS["green"], 0.6))
    assert (shares[NAMES.index("blue")], shares[NAMES.index("green")]) == (60, 40)
    assert dominant(shares) == "blue"


PALETTE = {
    "red": (220, 20, 20),
    "crimson": (200, 30, 45),
    "blue": (20, 30, 210),
    "green": (20, 200, 30),
}


@pytest.fixture
def app(settings: Settings, tmp_path: Path) -> Iterator[Flask]:
    with colour_gallery(settings, tmp_path / "colours", PALETTE) as application:
        yield application


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def test_import_stores_the_summary_and_the_color_filter_uses_it(
    app: Flask, client: FlaskClient
) -> None:
    ids = app.config["IDS"]
    with app.extensions["scenery"].sessions() as session:
        stored = {row.id: row for row in session.scalars(select(ImageRow))}
    assert {stored[ids[n]].colour for n in ("red", "crimson")} == {"red"}
    assert stored[ids["blue"]].colour == "blue"
    assert stored[ids["blue"]].colour_shares == colour_shares(solid(PALETTE["blue"], (96, 64)))
    body = client.get("/api/images?color=red").get_json()
    assert {image["id"] for image in body["images"]} == {ids["red"], ids["crimson"]}
    assert all(image["color"] == "red" for image in body["images"])
    answer = client.get("/api/images?color=magenta")
    assert answer.status_code == 400
    assert "use one of red, orange, yellow" in answer.get_data(as_text=True)
    # text search with the colour filter: "blue" ranks blue first, but the filter keeps red
    hits = client.get("/api/search?q=blue&color=red").get_json()["results"]
    assert {hit["id"] for hit in hits} == {ids["red"], ids["crimson"]}


def test_similar_by_colour_ranks_the_nearest_colours_and_drops_unlike_ones(
    app: Flask, client: FlaskClient
) -> None:
    ids = app.config["IDS"]
    body = client.get(f"/api/images/{ids['red']}/similar?by=color").get_json()
    assert body["by"] == "color"
    assert [hit["id"] for hit in body["results"]] == [ids["crimson"]]  # blue, green: unlike
    assert body["results"][0]["score"] == pytest.approx(1.0)
    page = client.get(f"/image/{ids['red']}").get_data(as_text=True)
    colours = page.split('class="similar similar-colours"')[1]
    assert f"/image/{ids['crimson']}" in colours and f"/image/{ids['blue']}" not in colours
    answer = client.get(f"/api/images/{ids['red']}/similar?by=smell")
    assert answer.status_code == 400 and "use one of clip, color" in answer.get_data(as_text=True)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_migration_summarises_images_stored_before_it(app: Flask) -> None:
    ctx = app.extensions["scenery"]
    ids = app.config["IDS"]
    with transaction(ctx.sessions) as session:
        blue = session.get(ImageRow, ids["blue"])
        assert blue is not None
        ctx.storage.thumb_path(blue.sha256, 400).unlink()  # a thumbnail gone: left without
    command.downgrade(alembic_config(ctx.engine), "0007")
    ctx.migrate()
    with ctx.sessions() as session:
        rows = {row.id: row for row in session.scalars(select(ImageRow))}
    assert rows[ids["blue"]].colour is None and rows[ids["blue"]].colour_shares is None
    for name in ("red", "crimson", "green"):
        with Image.open(
            io.BytesIO(ctx.storage.thumb_path(rows[ids[name]].sha256, 400).read_bytes())
        ) as thumb:
            expected = colour_shares(thumb)
        assert rows[ids[name]].colour_shares == expected
        assert rows[ids[name]].colour == dominant(expected)
    # without the data dir (a bare engine) the columns come, the values do not
    with transaction(ctx.sessions) as session:
        session.execute(update(ImageRow).values(colour=None, colour_shares=None))
    command.downgrade(alembic_config(ctx.engine), "0007")
    command.upgrade(alembic_config(ctx.engine), "head")
    with ctx.sessions() as session:
        assert session.scalars(select(ImageRow.colour)).all() == [None] * 4
