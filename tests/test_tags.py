"""Auto tags: the vocabulary file, tags given at import and ingest, the tag filter, the tag
pages (hostile names escaped), and ``scenery retag`` after the vocabulary is edited."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from ingest.runner import run_ingest
from scenery import cli_support
from scenery.cli import main
from scenery.config import Settings
from scenery.context import Context
from scenery.models import Image as ImageRow
from scenery.tags import DEFAULT_VOCABULARY, VocabularyError, read_vocabulary
from tests.fakes.embedders import ColourEmbedder, solid
from tests.fakes.reddit import FakeReddit
from tests.fakes.reddit_posts import make_post
from tests.helpers import colour_gallery

HOSTILE = "<script>alert(1)</script>"
VOCABULARY = f"""# colour words are what the test embedder understands
warm = red; yellow
cool = blue
leafy = green   # a comment after a tag
{HOSTILE} = white
"""
COLOURS = {
    "red": (220, 20, 20),
    "yellow": (230, 220, 30),
    "blue": (20, 30, 210),
    "green": (20, 200, 30),
    "white": (250, 250, 250),
}


def test_the_packaged_vocabulary_reads_and_bad_files_say_which_line() -> None:
    packaged = read_vocabulary(DEFAULT_VOCABULARY)
    for subject in ("mountain", "lake", "waterfall", "aurora", "night sky", "volcano", "cave"):
        assert subject in packaged.names
    assert len(packaged.names) >= 18


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lake\nlake = a lake\n", ":2: tag 'lake' is listed twice"),
        ("# nothing\n\n", "no tags"),
        (" = a photo of nothing\n", ":1: a tag name of 1 to 48 characters"),
        ("x" * 49 + "\n", ":1: a tag name"),
    ],
)
def test_a_bad_vocabulary_is_refused_with_its_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "tags.txt"
    path.write_text(text)
    with pytest.raises(VocabularyError, match=message.replace("(", r"\(")):
        read_vocabulary(path)


@pytest.fixture
def vocabulary(tmp_path: Path) -> Path:
    path = tmp_path / "tags.txt"
    path.write_text(VOCABULARY)
    return path


@pytest.fixture
def app(settings: Settings, tmp_path: Path, vocabulary: Path) -> Iterator[Flask]:
    tagged = settings.model_copy(update={"tag_vocabulary": vocabulary})
    with colour_gallery(tagged, tmp_path / "colours", COLOURS) as application:
        yield application


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def tags_by_name(app: Flask) -> dict[str, list[str]]:
    ids = app.config["IDS"]
    client = app.test_client()
    return {name: client.get(f"/api/images/{i}").get_json()["tags"] for name, i in ids.items()}


def test_import_tags_each_photo_and_the_tag_filter_keeps_them(
    app: Flask, client: FlaskClient
) -> None:
    assert tags_by_name(app) == {
        "red": ["warm"],
        "yellow": ["warm"],
        "blue": ["cool"],
        "green": ["leafy"],
        "white": [HOSTILE],
    }
    ids = app.config["IDS"]
    with app.extensions["scenery"].sessions() as session:
        red = session.get(ImageRow, ids["red"])
        assert red is not None and 0.15 <= red.tags[0].score <= 1.0
    warm = client.get("/api/images?tag=warm").get_json()
    assert {image["id"] for image in warm["images"]} == {ids["red"], ids["yellow"]}
    assert warm["filters"] == {"tag": ["warm"]}
    assert client.get("/api/images?tag=warm&tag=cool").get_json()["total"] == 0  # every tag
    hits = client.get("/api/search?q=red&tag=COOL").get_json()["results"]
    assert [hit["id"] for hit in hits] == [ids["blue"]]
    answer = client.get("/api/images?tag=mountain")
    assert answer.status_code == 400
    assert "unknown tag 'mountain': the tags are warm, cool, leafy" in answer.get_data(as_text=True)


def test_tag_pages_link_to_the_filter_and_escape_hostile_names(
    app: Flask, client: FlaskClient
) -> None:
    ids = app.config["IDS"]
    page = client.get("/tags").get_data(as_text=True)
    assert 'href="/?tag=warm">warm <span class="muted">2</span>' in page
    assert HOSTILE not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    image = client.get(f"/image/{ids['white']}").get_data(as_text=True)
    assert HOSTILE not in image and "&lt;script&gt;" in image
    home = client.get("/?tag=warm").get_data(as_text=True)
    assert 'data-filter="tag">#warm' in home
    assert f"/image/{ids['red']}" in home and f"/image/{ids['blue']}" not in home


def test_retag_after_editing_the_vocabulary(
    app: Flask, client: FlaskClient, vocabulary: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vocabulary.write_text("hot = red; yellow\ncold = blue; white\nleafy = green\n")
    stat = vocabulary.stat()
    os.utime(vocabulary, (stat.st_atime, stat.st_mtime + 5))  # a later edit, whatever the clock
    ctx: Context = app.extensions["scenery"]
    env = {
        "SCENERY_DATA_DIR": str(ctx.settings.data_dir),
        "SCENERY_DATABASE_URL": ctx.settings.db_url,
        "SCENERY_TAG_VOCABULARY": str(vocabulary),
    }
    # the CLI builds its own embedder from settings; this gallery's is the colour embedder
    original = cli_support.Context
    monkeypatch.setattr(
        cli_support, "Context", lambda settings: original(settings, embedder=ColourEmbedder())
    )
    result = CliRunner(env=env).invoke(main, ["retag"], catch_exceptions=False)
    assert result.exit_code == 0 and "retagged 5 images: 5 tags" in result.output
    assert tags_by_name(app) == {
        "red": ["hot"],
        "yellow": ["hot"],
        "blue": ["cold"],
        "green": ["leafy"],
        "white": ["cold"],
    }
    ids = app.config["IDS"]
    hot = client.get("/api/images?tag=hot").get_json()
    assert {image["id"] for image in hot["images"]} == {ids["red"], ids["yellow"]}
    assert client.get("/api/images?tag=warm").status_code == 400  # no longer a tag


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_ingest_tags_what_it_stores(tmp_path: Path, db_url: str, vocabulary: Path) -> None:
    fake = FakeReddit()
    with fake.running():
        settings = fake.settings(
            tmp_path, database_url=db_url, tag_vocabulary=vocabulary, ocr_watermark=False
        )
        posts = []
        for name in ("red", "blue"):
            buffer = io.BytesIO()
            solid(COLOURS[name], (900, 600)).save(buffer, "JPEG", quality=92)
            posts.append(make_post(name, url=fake.add_file(f"/img/{name}.jpg", buffer.getvalue())))
        fake.add_posts("EarthPorn", posts)
        ctx = Context(settings, embedder=ColourEmbedder())
        ctx.migrate()
        try:
            run_ingest(ctx, ["EarthPorn"], limit=10)
            with ctx.sessions() as session:
                stored = {
                    row.reddit_post_id: [t.tag for t in row.tags]
                    for row in session.scalars(select(ImageRow))
                }
        finally:
            ctx.close()
    assert stored == {"t3_red": ["warm"], "t3_blue": ["cool"]}
