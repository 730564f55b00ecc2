"""Shared fixtures: settings on a temporary data dir, over SQLite and PostgreSQL alike."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine, text

from scenery.config import Settings
from scenery.context import Context
from scenery.embed import OpenClipEmbedder

if TYPE_CHECKING:
    from flask.testing import FlaskClient

    from scenery.fetch import Fetcher
    from tests.admin_world import AdminWorld
    from tests.fetch_host import Host, Sleeps

REPO = Path(__file__).resolve().parents[1]
# One folder of ONNX model exports for the whole run (processes the tests start inherit it):
# the default runtime exports the tiny model once, not into every test's data dir.
os.environ.setdefault(
    "SCENERY_ONNX_DIR",
    str(Path(os.environ.get("TMPDIR", "/tmp")) / f"scenery-test-onnx-{os.getuid()}"),
)
PHOTOS = REPO.parent / "shared" / "data" / "photos"
PG_URL = os.environ.get("SCENERY_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture(scope="session")
def photos() -> list[Path]:
    """The real photographs shipped beside the repo (15 JPEGs)."""
    found = sorted(PHOTOS.glob("*.jpg"))
    if not found:
        pytest.fail(f"sample photos missing: expected JPEGs in {PHOTOS}")
    return found


@pytest.fixture
def photo_dir(tmp_path: Path, photos: list[Path]) -> Path:
    """A writable copy of the sample photos."""
    target = tmp_path / "photos"
    target.mkdir()
    for photo in photos:
        shutil.copy(photo, target / photo.name)
    return target


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    engine = create_engine(PG_URL)
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:  # pragma: no cover - depends on the machine
        pytest.fail(f"PostgreSQL is not reachable at {PG_URL}: {exc} (.ci/run starts it)")
    finally:
        engine.dispose()
    return PG_URL


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a private schema on the PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'scenery.db'}"
        return
    admin_url = request.getfixturevalue("pg_admin_url")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in admin_url else "?"
    yield f"{admin_url}{sep}options={quote(f'-csearch_path={schema}')}"
    with engine.connect() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=db_url,
        clip_model="tiny-test",
        clip_batch_size=8,
        index_refresh_seconds=0,
        warm_up=False,
    )


@pytest.fixture(scope="session")
def tiny_embedder() -> OpenClipEmbedder:
    """The built-in tiny open_clip model (random weights from a fixed seed), loaded once."""
    embedder = OpenClipEmbedder("tiny-test", "none", batch_size=8)
    embedder.load()
    return embedder


@pytest.fixture
def ctx(settings: Settings, tiny_embedder: OpenClipEmbedder) -> Iterator[Context]:
    context = Context(settings, embedder=tiny_embedder)
    context.migrate()
    yield context
    context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


CHROMIUM = Path("/usr/bin/chromium")
# Flags for a sandboxed CI machine with no network beyond loopback.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def page(artifacts: Path):  # type: ignore[no-untyped-def]
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: apt-get install chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_page(viewport={"width": 1280, "height": 860})
        yield context
        browser.close()


# -- the admin tests' gallery (test_admin*.py; other modules may define their own ``world``) --


@pytest.fixture
def world(
    tmp_path: Path, db_url: str, photos: list[Path], tiny_embedder: OpenClipEmbedder
) -> Iterator[AdminWorld]:
    from tests.admin_world import admin_world

    with admin_world(tmp_path, db_url, photos, tiny_embedder) as built:
        yield built


@pytest.fixture
def admin(world: AdminWorld) -> FlaskClient:
    from tests.admin_world import log_in

    client = world.app.test_client()
    assert log_in(client) == 302
    return client


# -- the fetch tests' image host (test_fetch*.py; builders in tests/fetch_host.py) -------------


@pytest.fixture(scope="session")
def image_host_server(photos: list[Path]) -> Iterator[Host]:
    from tests.fetch_host import hosting

    with hosting(photos[0].read_bytes()) as host:
        yield host


@pytest.fixture
def image_host(image_host_server: Host) -> Host:
    """The fake image host, with its observations cleared for this test."""
    image_host_server.state.reset()
    return image_host_server


@pytest.fixture
def download_dir(tmp_path: Path) -> Path:
    return tmp_path / "downloads"


@pytest.fixture
def fetch_sleeps() -> Sleeps:
    from tests.fetch_host import Sleeps

    return Sleeps()


@pytest.fixture
def fetcher(tmp_path: Path, fetch_sleeps: Sleeps) -> Iterator[Fetcher]:
    """A fetcher with short timeouts that records its waits instead of waiting."""
    from scenery.fetch import Fetcher
    from tests.fetch_host import make_settings

    with Fetcher(make_settings(tmp_path), sleep=fetch_sleeps) as built:
        yield built
