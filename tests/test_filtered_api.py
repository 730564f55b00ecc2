"""Filters on the search endpoints: text search, search by image and similar images return the
exact filtered ranking, page by page, whichever plan (exact scoring or the graph) runs them."""

from __future__ import annotations

import colorsys
import io
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from scenery import filtered_search, search
from scenery.config import Settings
from scenery.db import transaction
from scenery.image_filters import orientation_of
from scenery.importer import Importer
from scenery.models import Image
from tests.fakes.embedders import ColourEmbedder, solid
from web import create_app

SHAPES = [(96, 64), (64, 96), (80, 80), (200, 64)]  # landscape, portrait, square, panorama


@pytest.fixture
def app(settings: Settings, tmp_path: Path) -> Iterator[Flask]:
    application = create_app(settings, embedder=ColourEmbedder())
    application.config["TESTING"] = True
    ctx = application.extensions["scenery"]
    rng = random.Random(4)
    folder = tmp_path / "photos"
    folder.mkdir()
    made: dict[str, tuple[tuple[int, int, int], tuple[int, int]]] = {}
    for n in range(48):
        hue = n / 48
        rgb = tuple(round(255 * c) for c in colorsys.hsv_to_rgb(hue, 0.9, 0.9))
        shape = SHAPES[rng.randrange(len(SHAPES))]
        name = f"p{n:02}"
        solid(rgb, shape).save(folder / f"{name}.png")  # type: ignore[arg-type]
        made[name] = (rgb, shape)  # type: ignore[assignment]
    report = Importer(ctx).run(sorted(folder.iterdir()))
    assert not report.failed
    ids = {path.stem: image_id for path, image_id in report.imported}
    with transaction(ctx.sessions) as session:
        for name in list(ids)[::3]:
            session.execute(
                update(Image).where(Image.id == ids[name]).values(reddit_subreddit="EarthPorn")
            )
    application.config["MADE"] = made
    application.config["IDS"] = ids
    yield application
    ctx.close()


@pytest.fixture(params=["planned", "graph"])
def client(
    app: Flask, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> FlaskClient:
    if request.param == "graph":  # every filter takes the graph path (it never scores exactly)
        monkeypatch.setattr(filtered_search, "EXACT_FACTOR", 0)
    return app.test_client()


def expected(
    app: Flask, query: np.ndarray, keep: dict[str, bool], exclude: str | None = None
) -> list[int]:
    """The exact ranking among the kept photos: cosine of each one's colour embedding."""
    embedder = ColourEmbedder()
    ids = app.config["IDS"]
    scored = []
    for name, (rgb, shape) in app.config["MADE"].items():
        if keep[name] and name != exclude:
            vector = embedder.encode_images([solid(rgb, shape)])[0]
            scored.append((-float(vector @ query), ids[name]))
    return [image_id for _, image_id in sorted(scored)]


def kept_by_orientation(app: Flask, orientation: str) -> dict[str, bool]:
    return {
        n: orientation_of(*shape) == orientation for n, (_, shape) in app.config["MADE"].items()
    }


def result_ids(answer: object) -> list[int]:
    body = answer.get_json()  # type: ignore[attr-defined]
    assert answer.status_code == 200, body  # type: ignore[attr-defined]
    return [hit["id"] for hit in body["results"]]


@pytest.mark.parametrize("orientation", ["landscape", "portrait", "square", "panorama"])
def test_text_search_keeps_only_what_the_filter_keeps_in_exact_order(
    app: Flask, client: FlaskClient, orientation: str
) -> None:
    query = ColourEmbedder().encode_text(["red"])[0]
    truth = expected(app, query, kept_by_orientation(app, orientation))
    got = result_ids(client.get(f"/api/search?q=red&orientation={orientation}&k=5"))
    assert got == truth[:5]
    body = client.get(f"/api/search?q=red&orientation={orientation}&k=5").get_json()
    assert all(hit["orientation"] == orientation for hit in body["results"])
    assert body["filters"] == {"orientation": orientation}


def test_pages_of_a_filtered_search_follow_each_other(app: Flask, client: FlaskClient) -> None:
    query = ColourEmbedder().encode_text(["blue"])[0]
    keep = {n: (i % 3 == 0) for i, n in enumerate(app.config["MADE"])}  # the EarthPorn ones
    truth = expected(app, query, keep)
    pages = [
        result_ids(client.get(f"/api/search?q=blue&subreddit=earthporn&k=4&page={page}"))
        for page in (1, 2, 3, 4, 5)
    ]
    assert [i for p in pages for i in p] == truth  # 16 photos: four full pages, then an empty one
    assert [len(p) for p in pages] == [4, 4, 4, 4, 0]


def test_search_by_image_and_similar_take_the_same_filters(app: Flask, client: FlaskClient) -> None:
    buffer = io.BytesIO()
    solid((40, 200, 60)).save(buffer, "PNG")
    buffer.seek(0)
    answer = client.post(
        "/api/search/image?orientation=portrait&k=6",
        data={"image": (buffer, "q.png")},
        content_type="multipart/form-data",
    )
    query = ColourEmbedder().encode_images([solid((40, 200, 60))])[0]
    assert result_ids(answer) == expected(app, query, kept_by_orientation(app, "portrait"))[:6]
    ids, made = app.config["IDS"], app.config["MADE"]
    name = next(n for n, (_, shape) in made.items() if orientation_of(*shape) == "landscape")
    vector = ColourEmbedder().encode_images([solid(*made[name])])[0]
    got = result_ids(client.get(f"/api/images/{ids[name]}/similar?orientation=landscape&k=50"))
    truth = expected(app, vector, kept_by_orientation(app, "landscape"), exclude=name)
    assert got == truth and ids[name] not in got


def test_bad_filters_on_search_are_400s(client: FlaskClient) -> None:
    answer = client.get("/api/search?q=red&orientation=sideways")
    assert answer.status_code == 400 and "landscape, portrait" in answer.get_data(as_text=True)
    answer = client.get("/api/search?q=red&subreddit=Nowhere")
    assert answer.status_code == 400 and "EarthPorn (16)" in answer.get_data(as_text=True)
    answer = client.get("/api/search?q=red&page=0")
    assert answer.status_code == 400


def test_search_sorts_its_best_matches_by_date_or_a_seeded_shuffle(
    app: Flask, client: FlaskClient
) -> None:
    ids = app.config["IDS"]
    ctx = app.extensions["scenery"]
    with ctx.sessions() as session:
        rows = session.execute(
            select(Image.id, Image.published_at).where(Image.id.in_(ids.values()))
        )
        published = {image_id: at for image_id, at in rows}
    newest = client.get("/api/search?q=red&sort=newest&k=10").get_json()
    assert newest["sort"] == "newest"
    got = [hit["id"] for hit in newest["results"]]
    assert got == sorted(got, key=lambda i: (published[i], i), reverse=True)
    shuffled = client.get("/api/search?q=red&sort=random&seed=9&k=10").get_json()
    again = client.get("/api/search?q=red&sort=random&seed=9&k=10").get_json()
    assert shuffled["seed"] == 9 and shuffled["results"] == again["results"]
    relevance = client.get("/api/search?q=red&k=10").get_json()
    assert relevance["sort"] == "relevance"
    scores = [hit["score"] for hit in relevance["results"]]
    assert scores == sorted(scores, reverse=True)


def test_the_search_page_shows_only_what_the_filter_keeps(app: Flask, client: FlaskClient) -> None:
    made, ids = app.config["MADE"], app.config["IDS"]
    page = client.get("/search?q=red&orientation=portrait").get_data(as_text=True)
    shown = {name for name, i in ids.items() if f'href="/image/{i}"' in page}
    portrait = {name for name, (_, shape) in made.items() if orientation_of(*shape) == "portrait"}
    assert shown and shown <= portrait
    assert 'data-filter="orientation">portrait' in page


def test_a_filter_s_matches_are_reused_until_the_gallery_changes(
    app: Flask, client: FlaskClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[int] = []
    real = search._read_ids

    def counting(session: object, query: object) -> np.ndarray:
        found = real(session, query)  # type: ignore[arg-type]
        reads.append(len(found))
        return found

    monkeypatch.setattr(search, "_read_ids", counting)
    first = result_ids(client.get("/api/search?q=red&orientation=portrait&k=3"))
    result_ids(client.get("/api/search?q=blue&orientation=portrait&k=3&page=2"))
    assert len(reads) == 1  # another query, another page: the same matching set
    folder = tmp_path / "more"
    folder.mkdir()
    solid((250, 0, 0), (64, 96)).save(folder / "reddest.png")  # portrait, redder than any
    Importer(app.extensions["scenery"]).run([folder / "reddest.png"])
    after = result_ids(client.get("/api/search?q=red&orientation=portrait&k=3"))
    assert len(reads) == 2 and after[0] not in first  # a publication: read again, and found
