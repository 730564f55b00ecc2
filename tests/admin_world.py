"""A gallery with an admin, published photos and a Reddit ingest that left a queue, a
rejection and a near-duplicate pair: what the admin tests and browser tests start from."""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from PIL import Image, ImageOps
from sqlalchemy import select
from werkzeug.test import TestResponse

from ingest.runner import run_ingest
from ingest.summary import IngestSummary
from scenery.accounts import create_user
from scenery.context import Context
from scenery.db import transaction
from scenery.embed import OpenClipEmbedder
from scenery.importer import Importer
from scenery.models import Candidate, ImageStatus
from scenery.models import Image as ImageRow
from scenery.models import Post as PostRow
from scenery.review import review_queue
from tests.fakes.reddit import FakeReddit, Fault
from tests.fakes.reddit_posts import make_post
from tests.helpers import csrf_token
from tests.live import wait_for
from web import create_app

ADMIN, PASSWORD = "owner", "correct horse battery"
HOSTILE = "Sunset <script>alert('x')</script> & <b>bold</b>"
LOCAL = 4  # sample photos imported and published before the ingest


@dataclass
class AdminWorld:
    app: Flask
    ctx: Context
    fake: FakeReddit
    summary: IngestSummary

    def image_of(self, post_id: str) -> ImageRow:
        with self.ctx.sessions() as session:
            candidate = session.scalars(
                select(Candidate).join(Candidate.post).where(PostRow.fullname == f"t3_{post_id}")
            ).one()
            image = session.get(ImageRow, candidate.image_id or 0)
            assert image is not None, f"post {post_id} has no image: {candidate.reason}"
            session.expunge(image)
            return image

    def status(self, image_id: int) -> ImageStatus:
        with self.ctx.sessions() as session:
            image = session.get(ImageRow, image_id)
            assert image is not None
            return image.status

    def candidate(self, image_id: int) -> Candidate:
        with self.ctx.sessions() as session:
            row = session.scalars(select(Candidate).where(Candidate.image_id == image_id)).one()
            session.expunge(row)
            return row


def jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@contextmanager
def admin_world(
    tmp_path: Path, db_url: str, photos: list[Path], embedder: OpenClipEmbedder, **overrides: object
) -> Iterator[AdminWorld]:
    """Published local photos, then an ingest at cold start: every new photo is queued; a
    mirrored copy of a published photo is rejected as its near-duplicate; a tiny one as too
    small. One queued post has a hostile title."""
    fake = FakeReddit()
    with fake.running():
        settings = fake.settings(
            tmp_path,
            database_url=db_url,
            gallery_fit=True,  # below the reference minimum: cold start queues everything new
            nsfw_nudenet=False,
            **overrides,
        )
        app = create_app(settings, embedder=embedder)
        ctx: Context = app.extensions["scenery"]
        Importer(ctx).run(photos[:LOCAL])
        with transaction(ctx.sessions) as session:
            create_user(session, ADMIN, PASSWORD)
        posts = []
        for n, photo in enumerate(photos[LOCAL : LOCAL + 5]):
            url = fake.add_photo(f"/img/new{n}.jpg", photo)
            title = HOSTILE if n == 0 else f"New photo {n} [OC]"
            posts.append(make_post(f"new{n}", url=url, title=title))
        with Image.open(photos[0]) as first:
            mirrored = jpeg(ImageOps.mirror(first.convert("RGB")))
            small = jpeg(first.convert("RGB").resize((400, 300)))
        posts.append(
            make_post("mirror", url=fake.add_file("/img/mirror.jpg", mirrored, "image/jpeg"))
        )
        posts.append(make_post("tiny", url=fake.add_file("/img/tiny.jpg", small, "image/jpeg")))
        fake.add_posts("EarthPorn", posts)
        summary = run_ingest(ctx, ["EarthPorn"], limit=50)
        try:
            yield AdminWorld(app, ctx, fake, summary)
        finally:
            ctx.close()


def log_in(client: FlaskClient, username: str = ADMIN, password: str = PASSWORD) -> int:
    token = csrf_token(client, "/admin/login")
    response = client.post(
        "/admin/login", data={"username": username, "password": password, "csrf_token": token}
    )
    return response.status_code


def page_token(client: FlaskClient, path: str) -> str:
    return csrf_token(client, path)


STAT_RE = r'id="{}">([^<]+)<'


def stat(page: str, name: str) -> str:
    match = re.search(STAT_RE.format(name), page)
    assert match, f"no {name} on the page"
    return match.group(1)


def queued_ids(world: AdminWorld) -> list[int]:
    with world.ctx.sessions() as session:
        return [item.image.id for item in review_queue(session)]


def hold_listings(fake: FakeReddit, subreddit: str) -> Fault:
    """Hold every listing request for ``subreddit`` (public or OAuth) until released."""
    return fake.hold(f"*/r/{subreddit}/*", times=None)


def post_before(
    client: FlaskClient,
    path: str,
    data: dict[str, str],
    arrived: threading.Event,
    release: threading.Event,
) -> TestResponse:
    """POST from another thread and return the response, which must come back before
    ``arrived`` is set: a view that did the held work itself would wait on ``release``.
    ``release`` is set on the way out, so such a view ends and the test fails at once."""
    with ThreadPoolExecutor(1) as pool:
        posted = pool.submit(client.post, path, data=data)
        try:
            wait_for(lambda: posted.done() or arrived.is_set(), 60, f"POST {path}", step=0.01)
            assert not arrived.is_set(), f"POST {path} did the held work itself"
            return posted.result()
        finally:
            release.set()
