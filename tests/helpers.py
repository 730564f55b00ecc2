"""Small builders shared by tests."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event
from sqlalchemy.orm import Session

from scenery.config import Settings
from scenery.context import Context
from scenery.importer import Importer
from scenery.models import Image
from tests.fakes.embedders import ColourEmbedder, solid
from tests.fakes.reddit import FakeReddit
from web import create_app

PALETTE = {
    "red": (220, 20, 20),
    "green": (20, 200, 30),
    "blue": (20, 30, 210),
    "yellow": (230, 220, 30),
}


def sqlite_settings(tmp_path: Path) -> Settings:
    """Settings for a gallery on SQLite in ``tmp_path`` with the tiny model, for tests of the
    web layer that behave the same on every database."""
    return Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'scenery.db'}",
        clip_model="tiny-test",
        warm_up=False,
        index_refresh_seconds=0,
    )


def import_colours(
    ctx: Context, folder: Path, colours: dict[str, tuple[int, int, int]]
) -> dict[str, int]:
    """Write one solid-colour PNG per name, import them, and return their image ids by name."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for name, rgb in colours.items():
        path = folder / f"{name}.png"
        solid(rgb, (96, 64)).save(path)
        files.append(path)
    report = Importer(ctx).run(files)
    assert not report.failed, report.failed
    return {path.stem: image_id for path, image_id in report.imported}


@contextmanager
def colour_gallery(
    settings: Settings, folder: Path, colours: dict[str, tuple[int, int, int]]
) -> Iterator[Flask]:
    """A test app on the colour embedder with one imported photo per colour; their ids by
    name are in ``app.config["IDS"]``."""
    app = create_app(settings, embedder=ColourEmbedder())
    app.config["TESTING"] = True
    ctx = app.extensions["scenery"]
    app.config["IDS"] = import_colours(ctx, folder, colours)
    try:
        yield app
    finally:
        ctx.close()


@contextmanager
def failing_commit(
    ctx: Context, error: Callable[[], Exception], nth: int = 1, watch: type = Image
) -> Iterator[list[int]]:
    """Make the ``nth`` commit that writes ``watch`` rows (new or changed) raise ``error()``,
    as a database failing at COMMIT would; yield the ids of the rows it held."""
    lost: list[int] = []
    seen = [0]

    def after_flush(session: Session, _context: object) -> None:
        added = [o for o in (*session.new, *session.dirty) if isinstance(o, watch)]
        session.info.setdefault("images", []).extend(added)

    def before_commit(session: Session) -> None:
        session.flush()  # what commit would flush next, so that after_flush sees it
        images = session.info.pop("images", [])
        if not images:
            return
        seen[0] += 1
        if seen[0] == nth:
            lost.extend(image.id for image in images)
            raise error()

    event.listen(ctx.sessions, "after_flush", after_flush)
    event.listen(ctx.sessions, "before_commit", before_commit)
    try:
        yield lost
    finally:
        event.remove(ctx.sessions, "after_flush", after_flush)
        event.remove(ctx.sessions, "before_commit", before_commit)


@contextmanager
def ingest_held_at_fourth_photo(
    ctx: Context, fake: FakeReddit, photos: list[Path]
) -> Iterator[None]:
    """Post four photos to r/EarthPorn and ingest them on a thread (one photo a batch), the
    fourth download held. The pipeline overlaps three stages (embed batch N, screen batch
    N-1, store batch N-2), so inside the block the first photo has its files and may commit,
    the second and third have their files and wait, uncommitted, for the fourth. On leaving,
    the download is released and the ingest must finish without error."""
    import threading

    from ingest.runner import run_ingest
    from tests.fakes.reddit_posts import make_post

    fake.add_posts(
        "EarthPorn",
        [
            make_post(f"p{n}", url=fake.add_photo(f"/img/p{n}.jpg", photo))
            for n, photo in enumerate(photos[:4])
        ],
    )
    held = fake.hold("/img/p3.jpg")
    assert held.release is not None
    errors: list[BaseException] = []

    def ingest() -> None:
        try:
            run_ingest(ctx, ["EarthPorn"], limit=50)
        except BaseException as exc:  # reported on the test's thread
            errors.append(exc)

    runner = threading.Thread(target=ingest)
    runner.start()
    try:
        assert held.arrived.wait(60), "the ingest never reached the fourth download"
        yield
    finally:
        held.release.set()
        runner.join(timeout=120)
    assert not errors, errors


CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def csrf_token(client: FlaskClient, path: str) -> str:
    """The CSRF token a page's forms carry, as a browser would read it from the page."""
    page = client.get(path).get_data(as_text=True)
    match = CSRF_RE.search(page)
    assert match, f"no csrf_token on {path}"
    return match.group(1)


def subscribe(ctx: Context, name: str = "EarthPorn", every: int = 60, paused: bool = False) -> int:
    """Follow ``name``'s new listing (due at once); return the subscription id."""
    from scenery.db import transaction
    from scenery.subscriptions import save_subscription

    with transaction(ctx.sessions) as session:
        row = save_subscription(
            session,
            None,
            subreddit=name,
            listing="new",
            time_filter=None,
            post_limit=50,
            interval_minutes=every,
            paused=paused,
        )
        return row.id


def resized_copy(photo: Path) -> bytes:
    """The photo at 90% size, re-encoded: a near-duplicate for duplicate tests."""
    import io

    from PIL import Image

    image = Image.open(photo).convert("RGB")
    buffer = io.BytesIO()
    image.resize((image.width * 9 // 10, image.height * 9 // 10)).save(buffer, "JPEG", quality=70)
    return buffer.getvalue()
