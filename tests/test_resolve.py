"""Post resolution: Reddit images and galleries, imgur, flickr, previews and skip rules."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ingest.resolve import ImageRef, Resolution, Resolver
from tests.fakes.reddit import FakeReddit, flickr_size, imgur_image
from tests.fakes.reddit_posts import (
    as_post,
    fixture_data,
    fixture_post,
    gallery_item,
    make_crosspost,
    make_gallery_post,
    make_post,
)

FLICKR_ID = "53712345678"
ALBUM_ID = "Qw3rTy9"


@pytest.fixture(scope="module")
def served() -> Iterator[FakeReddit]:
    """One fake server per module: stopping a server costs half a second."""
    fake = FakeReddit()
    with fake.running():
        yield fake


@pytest.fixture
def fake(served: FakeReddit) -> FakeReddit:
    served.reset()
    return served


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def resolver_for(fake: FakeReddit, tmp_path: Path, sleeps: list[float]) -> Iterator[Any]:
    """Build resolvers on the fake (imgur and flickr keys set unless overridden)."""
    made: list[Resolver] = []

    def build(**overrides: Any) -> Resolver:
        values = {"imgur_client_id": fake.imgur_client_id, "flickr_api_key": fake.flickr_api_key}
        resolver = Resolver(fake.settings(tmp_path, **(values | overrides)), sleep=sleeps.append)
        made.append(resolver)
        return resolver

    yield build
    for resolver in made:
        resolver.close()


@pytest.fixture
def resolver(resolver_for: Any) -> Resolver:
    return resolver_for()


def urls(resolution: Resolution) -> list[str]:
    return [image.url for image in resolution.images]


def skipped(resolution: Resolution) -> str:
    assert resolution.images == ()
    assert resolution.skipped
    return resolution.skipped


# -- direct images ---------------------------------------------------------------------------


def test_keeps_a_reddit_image_with_its_preview_size(resolver: Resolver) -> None:
    found = resolver.resolve(fixture_post("direct_image"))
    url = "https://i.redd.it/8x2kq0v7a43d1.jpeg"
    assert found == Resolution(images=(ImageRef(url, "0", 0, 4032, 3024),))


@pytest.mark.parametrize(
    "url",
    [
        "https://i.imgur.com/Ab3dE9x.png",
        "https://live.staticflickr.com/65535/53712345678_0a1b2c3d4e_o.jpg",
        "https://farm66.staticflickr.com/65535/53712345678_0a1b2c3d4e_k.jpg",
        "https://photos.example.org/2024/05/IMG_2041.JPG",
        "http://cdn.example.net/landscape.webp?v=3",
        "https://example.com/scan.tiff",
    ],
)
def test_keeps_direct_image_links(resolver: Resolver, url: str) -> None:
    found = resolver.resolve(as_post(make_post(url=url, domain="example.org", preview=None)))
    assert found == Resolution(images=(ImageRef(url, "0", 0),))


# -- skip rules ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "words"),
    [
        ("removed", "deleted by its author"),
        ("nsfw", "NSFW"),
        ("spoiler", "spoiler"),
        ("self", "self post"),
        ("video", "video"),
    ],
)
def test_skips_posts_without_a_photo(resolver: Resolver, fixture: str, words: str) -> None:
    assert words in skipped(resolver.resolve(fixture_post(fixture)))


def test_skips_posts_removed_by_moderators(resolver: Resolver) -> None:
    post = as_post(make_post(removed_by_category="moderator"))
    assert "removed by the subreddit's moderators" in skipped(resolver.resolve(post))


def test_reports_removal_before_nsfw(resolver: Resolver) -> None:
    post = as_post(make_post(removed_by_category="reddit", over_18=True))
    assert skipped(resolver.resolve(post)) == "post was removed by Reddit"


@pytest.mark.parametrize(
    "url",
    [
        "https://i.imgur.com/Ab3dE9x.gifv",
        "https://i.redd.it/clip.mp4",
        "https://example.com/loop.webm",
        "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
        "https://youtu.be/dQw4w9WgXcQ",
        "https://v.redd.it/k2h7q9r0b43d1",
    ],
)
def test_skips_video_links(resolver: Resolver, url: str) -> None:
    post = as_post(make_post(url=url, domain="example.com"))
    assert skipped(resolver.resolve(post)).startswith("video")


def test_resolves_nsfw_and_spoilers_when_allowed(resolver_for: Any) -> None:
    resolver = resolver_for(skip_nsfw=False, skip_spoilers=False)
    assert urls(resolver.resolve(fixture_post("nsfw"))) == ["https://i.redd.it/n5fw0a1c43d1.jpg"]
    assert len(resolver.resolve(fixture_post("spoiler")).images) == 1


# -- galleries -------------------------------------------------------------------------------


def test_resolves_a_gallery_in_gallery_order_with_original_files(resolver: Resolver) -> None:
    found = resolver.resolve(fixture_post("gallery"))
    assert found.skipped is None
    assert found.images == (
        ImageRef("https://i.redd.it/zq1mb3kd7a3d1.jpg", "zq1mb3kd7a3d1", 0, 4000, 6000),
        ImageRef("https://i.redd.it/a91xkd0e7a3d1.png", "a91xkd0e7a3d1", 1, 5472, 3648),
        # the animated item (2) and the failed upload (3) are left out
        ImageRef("https://i.redd.it/c7wz9b1f7a3d1.jpg", "c7wz9b1f7a3d1", 4, 3000, 2000),
    )


def test_gallery_order_comes_from_gallery_data(resolver: Resolver) -> None:
    data = fixture_data("gallery")
    by_id = {item["media_id"]: item for item in data["gallery_data"]["items"]}
    order = ["a91xkd0e7a3d1", "zq1mb3kd7a3d1", "c7wz9b1f7a3d1"]
    assert order != [key for key in data["media_metadata"] if key in order]
    data["gallery_data"]["items"] = [by_id[key] for key in order]
    keys = [image.key for image in resolver.resolve(as_post(data)).images]
    assert keys == order


def test_unescapes_gallery_urls_that_stay_on_their_host(resolver: Resolver) -> None:
    item = gallery_item("q1w2e3r4t5y6u", 4000, 3000)
    item["s"]["u"] = "https://i.redd.it/q1w2e3r4t5y6u.jpg?a=1&amp;b=2"
    post = as_post(make_gallery_post("1d5gal1", [("q1w2e3r4t5y6u", item)]))
    assert urls(resolver.resolve(post)) == ["https://i.redd.it/q1w2e3r4t5y6u.jpg?a=1&b=2"]


def test_takes_the_extension_from_the_url_when_the_mime_type_is_missing(
    resolver: Resolver,
) -> None:
    item = gallery_item("q1w2e3r4t5y6u", 4000, 3000, "image/png")
    del item["m"]
    post = as_post(make_gallery_post("1d5gal2", [("q1w2e3r4t5y6u", item)]))
    assert urls(resolver.resolve(post)) == ["https://i.redd.it/q1w2e3r4t5y6u.png"]


def test_skips_a_gallery_without_a_valid_image(resolver: Resolver) -> None:
    items = [("f1", {"status": "failed", "id": "f1"}), ("u2", {"status": "unprocessed"})]
    post = as_post(make_gallery_post("1d5gal3", items))
    assert skipped(resolver.resolve(post)) == "gallery has no usable image"


def test_resolves_a_crosspost_of_a_gallery_from_its_parent(resolver: Resolver) -> None:
    found = resolver.resolve(fixture_post("crosspost_gallery"))
    assert [(i.key, i.width, i.height) for i in found.images] == [
        ("p8rent1a7a3d1", 6000, 4000),
        ("p8rent2b7a3d1", 4000, 6000),
    ]
    assert urls(found)[0] == "https://i.redd.it/p8rent1a7a3d1.jpg"


@pytest.mark.parametrize(
    ("parent_flags", "own_flags", "words"),
    [
        ({"over_18": True}, {}, "NSFW"),
        ({}, {"over_18": True}, "NSFW"),
        ({"removed_by_category": "moderator"}, {}, "removed"),
        ({"is_video": True, "url": "https://v.redd.it/x1", "domain": "v.redd.it"}, {}, "video"),
    ],
)
def test_skips_a_crosspost_when_either_side_is_flagged(
    resolver: Resolver, parent_flags: dict[str, Any], own_flags: dict[str, Any], words: str
) -> None:
    parent = make_post(id="1d5par1", subreddit="MostBeautiful", **parent_flags)
    post = as_post(make_crosspost("1d5xp01", parent, **own_flags))
    assert words in skipped(resolver.resolve(post))


# -- imgur -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["https://imgur.com/Xy12AbC", "https://m.imgur.com/Xy12AbC", "https://imgur.com/Xy12AbC.png"],
)
def test_turns_an_imgur_page_into_its_file(fake: FakeReddit, resolver: Resolver, url: str) -> None:
    data = fixture_data("imgur_page")
    data["url"] = data["url_overridden_by_dest"] = url
    found = resolver.resolve(as_post(data))
    assert found.images == (ImageRef(fake.url("/imgur/Xy12AbC.jpg"), "Xy12AbC", 0),)


def test_resolves_an_imgur_album_through_the_api(fake: FakeReddit, resolver: Resolver) -> None:
    fake.add_album(
        ALBUM_ID,
        [
            imgur_image("Img0001", 4000, 3000),
            imgur_image("Gif0002", 480, 270, "image/gif"),
            imgur_image("Vid0003", 1920, 1080, "video/mp4"),
            imgur_image("Img0004", 3000, 4500, "image/png"),
        ],
    )
    found = resolver.resolve(fixture_post("imgur_album"))
    assert found.images == (
        ImageRef("https://i.imgur.com/Img0001.jpg", "Img0001", 0, 4000, 3000),
        ImageRef("https://i.imgur.com/Img0004.png", "Img0004", 3, 3000, 4500),
    )
    (call,) = fake.requests
    assert call.path == f"/3/album/{ALBUM_ID}/images"
    assert call.headers["Authorization"] == f"Client-ID {fake.imgur_client_id}"


@pytest.mark.parametrize(
    "url",
    [
        f"https://imgur.com/gallery/{ALBUM_ID}",
        f"https://imgur.com/a/iceland-ring-road-in-winter-{ALBUM_ID}",
    ],
)
def test_reads_album_ids_from_gallery_and_slug_links(
    fake: FakeReddit, resolver: Resolver, url: str
) -> None:
    fake.add_album(ALBUM_ID, [imgur_image("Img0001", 4000, 3000)])
    post = as_post(make_post(url=url, domain="imgur.com"))
    assert urls(resolver.resolve(post)) == ["https://i.imgur.com/Img0001.jpg"]


def test_skips_an_imgur_album_without_a_client_id(fake: FakeReddit, resolver_for: Any) -> None:
    found = resolver_for(imgur_client_id=None).resolve(fixture_post("imgur_album"))
    assert skipped(found) == "imgur album needs SCENERY_IMGUR_CLIENT_ID"
    assert fake.requests == []


def test_skips_an_imgur_album_the_api_cannot_find(resolver: Resolver) -> None:
    assert "HTTP 404" in skipped(resolver.resolve(fixture_post("imgur_album")))


def test_skips_an_imgur_album_with_a_refused_client_id(resolver_for: Any) -> None:
    found = resolver_for(imgur_client_id="revoked").resolve(fixture_post("imgur_album"))
    assert "HTTP 403" in skipped(found)


def test_retries_the_imgur_api_after_a_server_error(
    fake: FakeReddit, resolver: Resolver, sleeps: list[float]
) -> None:
    fake.add_album(ALBUM_ID, [imgur_image("Img0001", 4000, 3000)])
    fake.fail(f"/3/album/{ALBUM_ID}/images", status=502)
    assert len(resolver.resolve(fixture_post("imgur_album")).images) == 1
    assert len(sleeps) == 1


def test_gives_up_on_an_imgur_api_that_keeps_failing(
    fake: FakeReddit, resolver: Resolver, sleeps: list[float]
) -> None:
    fake.fail("/3/album/*", status=503, times=None)
    reason = skipped(resolver.resolve(fixture_post("imgur_album")))
    assert "HTTP 503" in reason
    assert "3 tries" in reason
    assert len(sleeps) == 2


# -- flickr ----------------------------------------------------------------------------------


def flickr_sizes(fake: FakeReddit) -> list[dict[str, Any]]:
    base = "https://live.staticflickr.com/65535/53712345678_0a1b2c3d4e"
    return [
        flickr_size("Square", 75, 75, f"{base}_s.jpg"),
        flickr_size("Large", 1024, 683, f"{base}_b.jpg"),
        flickr_size("Original", 5000, 3333, f"{base}_o.jpg"),
        flickr_size("Large 2048", 2048, 1365, f"{base}_k.jpg"),
    ]


def test_resolves_a_flickr_page_to_its_largest_size(fake: FakeReddit, resolver: Resolver) -> None:
    fake.add_flickr_photo(FLICKR_ID, flickr_sizes(fake))
    found = resolver.resolve(fixture_post("flickr_page"))
    url = "https://live.staticflickr.com/65535/53712345678_0a1b2c3d4e_o.jpg"
    assert found.images == (ImageRef(url, FLICKR_ID, 0, 5000, 3333),)
    (call,) = fake.requests
    assert call.path == "/services/rest/"
    assert call.query == {
        "method": "flickr.photos.getSizes",
        "api_key": fake.flickr_api_key,
        "photo_id": FLICKR_ID,
        "format": "json",
        "nojsoncallback": "1",
    }


def test_prefers_the_original_flickr_size_on_a_tie(fake: FakeReddit, resolver: Resolver) -> None:
    fake.add_flickr_photo(
        FLICKR_ID,
        [
            flickr_size("Original", 6000, 4000, "https://example.com/original.jpg"),
            flickr_size("X-Large 6K", 6000, 4000, "https://example.com/6k.jpg"),
        ],
    )
    assert urls(resolver.resolve(fixture_post("flickr_page"))) == [
        "https://example.com/original.jpg"
    ]


def test_skips_a_flickr_page_without_an_api_key(fake: FakeReddit, resolver_for: Any) -> None:
    found = resolver_for(flickr_api_key=None).resolve(fixture_post("flickr_page"))
    assert skipped(found) == "flickr page needs SCENERY_FLICKR_API_KEY"
    assert fake.requests == []


def test_skips_a_flickr_photo_flickr_cannot_find(resolver: Resolver) -> None:
    reason = skipped(resolver.resolve(fixture_post("flickr_page")))
    assert reason == f"flickr photo {FLICKR_ID}: Photo not found"


def test_passes_on_flickrs_message_for_a_bad_key(fake: FakeReddit, resolver_for: Any) -> None:
    fake.add_flickr_photo(FLICKR_ID, flickr_sizes(fake))
    found = resolver_for(flickr_api_key="0000").resolve(fixture_post("flickr_page"))
    assert "Invalid API Key" in skipped(found)


# -- previews --------------------------------------------------------------------------------


def test_falls_back_to_the_unescaped_preview(resolver: Resolver) -> None:
    found = resolver.resolve(fixture_post("preview_fallback"))
    url = "https://external-preview.redd.it/yos3m1te.jpg?width=2048&auto=webp&s=33cc"
    assert found.images == (ImageRef(url, "0", 0, 2048, 1365),)


def test_skips_a_link_that_is_not_an_image_and_has_no_preview(resolver: Resolver) -> None:
    data = fixture_data("preview_fallback")
    del data["preview"]
    reason = skipped(resolver.resolve(as_post(data)))
    assert reason == "link is not an image (nationalparks.example)"


def test_creates_and_closes_its_own_client(fake: FakeReddit, tmp_path: Path) -> None:
    with Resolver(fake.settings(tmp_path)) as resolver:
        assert len(resolver.resolve(fixture_post("direct_image")).images) == 1
