"""End to end: a fake subreddit through the whole pipeline, twice, with every bad kind of input."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image, ImageOps
from sqlalchemy import select

from ingest.runner import run_ingest
from scenery.config import Settings
from scenery.context import Context
from scenery.db import transaction
from scenery.doctor import examine
from scenery.embed import OpenClipEmbedder
from scenery.models import Candidate, CandidateState, ImageStatus, PostOutcome
from scenery.models import Image as ImageRow
from scenery.models import Post as PostRow
from tests import badfiles
from tests.fakes.reddit import FakeReddit
from tests.fakes.reddit_posts import make_post


def jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


@dataclass
class World:
    fake: FakeReddit
    ctx: Context
    settings: Settings
    good: list[str]  # post ids whose single image should be published


def build_subreddit(fake: FakeReddit, photos: list[Path]) -> list[str]:
    """Ten good photos, then duplicates and every kind of bad post; return the good post ids."""
    posts, good = [], []
    for n, photo in enumerate(photos[:10]):
        posts.append(make_post(f"good{n}", url=fake.add_photo(f"/img/good{n}.jpg", photo)))
        good.append(f"good{n}")
    first = Image.open(photos[0]).convert("RGB")
    bad_files = {
        "exactdup": (photos[1].read_bytes(), "image/jpeg"),
        "resized": (jpeg(first.resize((1500, 1000)), quality=60), "image/jpeg"),
        "mirrored": (jpeg(ImageOps.mirror(Image.open(photos[2]).convert("RGB"))), "image/jpeg"),
        "small": (jpeg(first.resize((640, 400))), "image/jpeg"),
        "truncated": (photos[3].read_bytes()[:40_000], "image/jpeg"),
        "html": (b"<!doctype html><html><body>not a photo</body></html>" * 50, "image/jpeg"),
        "bomb": (badfiles.decompression_bomb(), "image/png"),
        "huge": (b"\xff\xd8\xff\xe0" + b"\0" * 3_000_000, "image/jpeg"),
    }
    for name, (body, content_type) in bad_files.items():
        url = fake.add_file(f"/img/{name}.jpg", body, content_type)
        posts.append(make_post(name, url=url))
    posts.append(make_post("missing", url=fake.url("/img/nothing-here.jpg")))
    posts.append(make_post("video", url="https://v.redd.it/abc123", is_video=True))
    posts.append(make_post("nsfw", url=fake.url("/img/good0.jpg"), over_18=True))
    posts.append(make_post("selfpost", url="https://www.reddit.com/r/EarthPorn/x", is_self=True))
    fake.add_posts("EarthPorn", posts)
    return good


@pytest.fixture
def world(
    tmp_path: Path, db_url: str, photos: list[Path], tiny_embedder: OpenClipEmbedder
) -> Iterator[World]:
    fake = FakeReddit()
    with fake.running():
        settings = fake.settings(tmp_path, database_url=db_url, download_max_bytes=2_000_000)
        ctx = Context(settings, embedder=tiny_embedder)
        ctx.migrate()
        yield World(fake, ctx, settings, build_subreddit(fake, photos))
        ctx.close()


def candidates_by_post(ctx: Context) -> dict[str, Candidate]:
    with ctx.sessions() as session:
        rows = session.execute(select(PostRow.fullname, Candidate).join(Candidate.post)).all()
    return {fullname.removeprefix("t3_"): candidate for fullname, candidate in rows}


def test_ingest_publishes_good_images_and_rejects_each_bad_one_with_its_reason(
    world: World,
) -> None:
    summary = run_ingest(world.ctx, ["EarthPorn"], limit=50)
    assert summary.posts_seen == 22 and summary.published == 10
    found = candidates_by_post(world.ctx)
    for post_id in world.good:
        assert found[post_id].state == CandidateState.PUBLISHED, found[post_id].reason
    expected = {
        "exactdup": (CandidateState.REJECTED, "duplicate_exact"),
        "resized": (CandidateState.REJECTED, "duplicate_phash"),
        "mirrored": (CandidateState.REJECTED, "duplicate_phash"),
        "small": (CandidateState.REJECTED, "too_small"),
        "truncated": (CandidateState.FAILED, "undecodable"),
        "html": (CandidateState.FAILED, "not_an_image"),
        "bomb": (CandidateState.FAILED, "undecodable"),
        "huge": (CandidateState.FAILED, "too_large"),
        "missing": (CandidateState.FAILED, "http_status"),
    }
    for post_id, (state, code) in expected.items():
        assert (found[post_id].state, found[post_id].reason_code) == (state, code), post_id
        assert found[post_id].reason
    assert "decompression bomb" in found["bomb"].reason
    assert found["exactdup"].matched_image_id == found["good1"].image_id
    assert found["mirrored"].matched_image_id == found["good2"].image_id
    with world.ctx.sessions() as session:
        skipped = dict(
            session.execute(
                select(PostRow.fullname, PostRow.reason).where(
                    PostRow.outcome == PostOutcome.SKIPPED
                )
            ).all()
        )
        rejected_small = session.get(ImageRow, found["small"].image_id)
    assert set(skipped) == {"t3_video", "t3_nsfw", "t3_selfpost"}
    assert rejected_small is not None and rejected_small.status == ImageStatus.REJECTED
    assert rejected_small.curation["filters"]  # every filter's verdict is kept
    assert len(world.ctx.index) == 10
    assert examine(world.ctx).ok


def test_second_run_publishes_nothing_and_downloads_nothing_seen(world: World) -> None:
    run_ingest(world.ctx, ["EarthPorn"], limit=50)
    world.fake.requests.clear()
    again = run_ingest(world.ctx, ["EarthPorn"], limit=50)
    assert again.published == 0 and again.posts_known == 22
    assert [r.path for r in world.fake.requests if r.path.startswith("/img/")] == []


def test_published_reddit_images_carry_their_attribution(world: World) -> None:
    run_ingest(world.ctx, ["EarthPorn"], limit=50)
    image_id = candidates_by_post(world.ctx)["good3"].image_id
    with world.ctx.sessions() as session:
        image = session.get(ImageRow, image_id)
    assert image is not None and image.source == "reddit"
    assert image.reddit_post_id == "t3_good3" and image.reddit_subreddit == "EarthPorn"
    assert image.reddit_title and image.reddit_permalink.startswith("/r/EarthPorn/")


def test_failed_listing_is_reported_and_others_still_run(world: World) -> None:
    world.fake.refuse("PrivatePics", 403)
    summary = run_ingest(world.ctx, ["PrivatePics", "EarthPorn"], limit=50)
    assert summary.published == 10 and len(summary.errors) == 1
    assert "PrivatePics" in summary.errors[0] and not summary.nothing_fetched
    only_bad = run_ingest(world.ctx, ["PrivatePics"], limit=5)
    assert only_bad.nothing_fetched


def test_dry_run_stores_nothing(world: World) -> None:
    summary = run_ingest(world.ctx, ["EarthPorn"], limit=50, dry_run=True)
    assert summary.images_found == 19 and summary.published == 0
    assert candidates_by_post(world.ctx) == {}
    assert not [r for r in world.fake.requests if r.path.startswith("/img/")]


def test_rejected_files_are_dropped_after_retention_but_never_fetched_again(world: World) -> None:
    run_ingest(world.ctx, ["EarthPorn"], limit=50)
    small_id = candidates_by_post(world.ctx)["small"].image_id
    with transaction(world.ctx.sessions) as session:
        image = session.get(ImageRow, small_id)
        assert image is not None
        image.created_at = datetime.now(UTC) - timedelta(days=31)
        original = world.settings.root / image.path
    assert original.exists()
    world.fake.requests.clear()
    world.fake.add_posts(
        "EarthPorn", [make_post("small-repost", url=world.fake.url("/img/small.jpg"))]
    )
    summary = run_ingest(world.ctx, ["EarthPorn"], limit=50)
    assert summary.purged == 1 and not original.exists()
    with world.ctx.sessions() as session:
        image = session.get(ImageRow, small_id)
        assert image is not None and image.purged_at is not None
    repost = candidates_by_post(world.ctx)["small-repost"]
    assert repost.reason_code == "duplicate_exact" and repost.matched_image_id == small_id
    assert "/img/small.jpg" not in world.fake.paths()  # known URL: not downloaded again
    assert examine(world.ctx).ok  # a purged row is not a row without files
