"""Gallery filters through ``GET /api/images``: orientation, size, screen fit, source and dates,
alone and combined, on SQLite and PostgreSQL; bad values are 400s that say what is allowed."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from scenery.config import Settings
from scenery.db import transaction
from scenery.image_filters import orientation_of, parse_filter
from scenery.models import Image, ImageStatus
from tests.fakes.embedders import ColourEmbedder
from web import create_app

# name: (width, height, subreddit or None for a local import, published day, posted day)
PHOTOS = {
    "wide4k": (3840, 2160, "EarthPorn", "2026-11-10", "2026-11-09"),
    "tall4k": (2160, 3840, "EarthPorn", "2026-11-20", "2026-11-01"),
    "pano": (5600, 2000, "SkyPorn", "2026-10-05", "2026-10-01"),
    "square": (2000, 2050, None, "2026-11-25", None),
    "phone": (1170, 2532, None, "2026-11-26", None),
    "small": (800, 600, "earthporn", "2026-09-01", "2026-08-31"),
    "hd": (1920, 1280, "EarthPorn", "2026-11-30", "2026-11-30"),
}


def day(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text).replace(hour=12, tzinfo=UTC)


def add_rows(app: Flask, sizes: dict[str, tuple[int, int, str | None, str, str | None]]) -> None:
    ctx = app.extensions["scenery"]
    with transaction(ctx.sessions) as session:
        for n, (name, (w, h, subreddit, published, posted)) in enumerate(sizes.items()):
            session.add(
                Image(
                    sha256=f"{n:064x}",
                    path=f"images/{n}.jpg",
                    width=w,
                    height=h,
                    bytes=1000,
                    format="JPEG",
                    phash="0" * 16,
                    title=name,
                    status=ImageStatus.PUBLISHED,
                    source="local" if subreddit is None else "reddit",
                    reddit_subreddit=subreddit,
                    reddit_created_at=day(posted),
                    published_at=day(published),
                )
            )


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    application = create_app(settings, embedder=ColourEmbedder())
    application.config["TESTING"] = True
    add_rows(application, PHOTOS)
    yield application
    application.extensions["scenery"].close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def names(client: FlaskClient, query: str) -> set[str]:
    answer = client.get(f"/api/images?per_page=200&{query}")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    body = answer.get_json()
    assert body["total"] == len(body["images"])
    return {image["title"] for image in body["images"]}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", set(PHOTOS)),
        ("orientation=landscape", {"wide4k", "small", "hd"}),
        ("orientation=portrait", {"tall4k", "phone"}),
        ("orientation=Square", {"square"}),
        ("orientation=panorama", {"pano"}),
        ("size=4k", {"wide4k", "tall4k"}),
        ("size=hd", {"wide4k", "tall4k", "pano", "hd", "square", "phone"}),
        ("min_width=2000", {"wide4k", "tall4k", "pano", "square"}),
        ("min_height=2500", {"tall4k", "phone"}),
        ("min_megapixels=8.2", {"wide4k", "tall4k", "pano"}),
        ("min_megapixels=11.2", {"pano"}),
        # a phone (1170x2532 device pixels) gets tall photos, a 21:9 monitor wide ones
        ("fits=1170x2532", {"phone", "tall4k"}),
        ("fits=3440x1440", {"pano"}),
        ("fits=1920x1080", {"wide4k", "hd"}),
        ("subreddit=EarthPorn", {"wide4k", "tall4k", "small", "hd"}),
        ("subreddit=r/skyporn", {"pano"}),
        ("subreddit=local", {"square", "phone"}),
        ("added_after=2026-11-20", {"tall4k", "square", "phone", "hd"}),
        ("added_before=2026-11-10", {"wide4k", "pano", "small"}),
        ("added_after=2026-11-10&added_before=2026-11-20", {"wide4k", "tall4k"}),
        ("posted_after=2026-11-01&posted_before=2026-11-09", {"tall4k", "wide4k"}),
        ("added_after=2026-11-26T00:00:00%2B00:00", {"phone", "hd"}),
        ("orientation=portrait&subreddit=EarthPorn&fits=1170x2532", {"tall4k"}),
        ("orientation=landscape&size=4k&subreddit=local", set()),
        ("orientation=landscape&min_width=&size=", {"wide4k", "small", "hd"}),
    ],
)
def test_each_filter_alone_and_combined(
    client: FlaskClient, query: str, expected: set[str]
) -> None:
    assert names(client, query) == expected


def test_results_carry_orientation_and_source_and_the_filters_used(client: FlaskClient) -> None:
    body = client.get("/api/images?orientation=PORTRAIT&fits=1170X2532&per_page=5").get_json()
    assert body["filters"] == {"orientation": "portrait", "fits": "1170x2532"}
    by_title = {image["title"]: image for image in body["images"]}
    assert (
        by_title["phone"]["orientation"] == "portrait" and by_title["phone"]["subreddit"] == "local"
    )
    assert by_title["tall4k"]["subreddit"] == "EarthPorn"
    # the echoed filters give the same listing back
    again = client.get("/api/images", query_string={**body["filters"], "per_page": 5}).get_json()
    assert again["images"] == body["images"]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("orientation=diagonal", "use one of landscape, portrait, square, panorama"),
        ("size=16k", "use one of hd, 4k, 5k, 8k"),
        ("min_width=-5", "min_width must be a whole number of pixels"),
        ("min_width=1e3", "min_width must be a whole number of pixels"),
        ("min_height=99999999", "from 1 to 1,000,000"),
        ("min_megapixels=nan", "min_megapixels must be a number of megapixels above 0"),
        ("min_megapixels=0", "above 0"),
        ("fits=1920", "fits must be WIDTHxHEIGHT"),
        ("fits=0x1080", "fits must be WIDTHxHEIGHT"),
        ("subreddit=../etc", "subreddit must be a subreddit's name"),
        ("added_after=2026-13-01", "added_after must be an ISO date"),
        ("added_after=2026-11-20&added_before=2026-11-10", "is after added_before"),
        ("subreddit=NoSuchPlace", "sources: EarthPorn (4), local (2), SkyPorn (1)"),
    ],
)
def test_bad_values_are_400s_that_say_what_is_allowed(
    client: FlaskClient, query: str, message: str
) -> None:
    answer = client.get(f"/api/images?{query}")
    assert answer.status_code == 400
    assert message in answer.get_data(as_text=True)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sql_orientation_agrees_with_orientation_of_on_random_sizes(app: Flask) -> None:
    rng = random.Random(7)
    sizes = {}
    for n in range(300):
        w = rng.randint(1, 9000)
        h = rng.choice([w, w + rng.randint(-w // 15, w // 15), rng.randint(1, 9000), w // 2])
        sizes[f"r{n}"] = (w, max(h, 1), None, "2026-11-01", None)
    ctx = app.extensions["scenery"]
    with transaction(ctx.sessions) as session:
        session.query(Image).delete()
    add_rows(app, sizes)
    with ctx.sessions() as session:
        for orientation in ("landscape", "portrait", "square", "panorama"):
            where = parse_filter({"orientation": orientation}).conditions(0.2)
            kept = set(session.scalars(select(Image.title).where(*where)))
            expected = {k for k, (w, h, *_) in sizes.items() if orientation_of(w, h) == orientation}
            assert kept == expected, orientation


def test_random_order_is_stable_per_seed_and_pages_neither_repeat_nor_skip(
    client: FlaskClient,
) -> None:
    def order(query: str) -> list[str]:
        return [i["title"] for i in client.get(f"/api/images?{query}").get_json()["images"]]

    first = order("sort=random&seed=5&per_page=50")
    assert sorted(first) == sorted(PHOTOS) and first == order("sort=random&seed=5&per_page=50")
    others = {tuple(order(f"sort=random&seed={seed}&per_page=50")) for seed in range(6, 12)}
    assert len(others | {tuple(first)}) > 1  # other seeds, other orders
    paged = [t for p in (1, 2, 3) for t in order(f"sort=random&seed=5&per_page=3&page={p}")]
    assert paged == first
    fresh = client.get("/api/images?sort=random").get_json()
    assert fresh["sort"] == "random" and fresh["seed"] > 0  # to ask for the next page with
    newest = order("per_page=50")
    assert newest == order("sort=newest&per_page=50") and newest[0] == "hd"  # published last


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("sort=relevance", "relevance needs a search"),
        ("sort=oldest", "use one of newest, random"),
        ("sort=random&seed=-1", "seed must be between"),
    ],
)
def test_bad_sorts_are_400s(client: FlaskClient, query: str, message: str) -> None:
    answer = client.get(f"/api/images?{query}")
    assert answer.status_code == 400 and message in answer.get_data(as_text=True)


def test_the_home_page_filters_and_offers_each_source_with_its_count(
    client: FlaskClient,
) -> None:
    listed = client.get("/api/images?per_page=50").get_json()["images"]
    ids = {image["title"]: image["id"] for image in listed}
    page = client.get("/?orientation=portrait&subreddit=EarthPorn").get_data(as_text=True)
    shown = {title for title, i in ids.items() if f'href="/image/{i}"' in page}
    assert shown == {"tall4k"}
    assert ">r/EarthPorn (4)</option>" in page and ">imported (2)</option>" in page
    assert 'data-filter="subreddit">from EarthPorn' in page
    dated = client.get("/?added_after=2026-11-25").get_data(as_text=True)
    assert {t for t, i in ids.items() if f'href="/image/{i}"' in dated} == {"square", "phone", "hd"}
    assert 'value="2026-11-25"' in dated  # the form shows the filter it applied
    assert client.get("/?orientation=sideways").status_code == 400
