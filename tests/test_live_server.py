"""Real processes: a gunicorn server sees images that a separate import process publishes."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from scenery.config import Settings
from tests.helpers import CSRF_RE
from tests.live import BIN, running_server, scenery, scenery_env, wait_for

pytestmark = pytest.mark.slow


def search_ids(base: str) -> set[int]:
    results = httpx.get(f"{base}/api/search", params={"q": "mountain", "k": 50}).json()["results"]
    return {r["id"] for r in results}


def test_running_server_picks_up_a_separate_import(
    settings: Settings, photo_dir: Path, tmp_path: Path
) -> None:
    later = tmp_path / "later"
    later.mkdir()
    shutil.move(photo_dir / "wine.jpg", later / "wine.jpg")
    first = scenery(settings, "import", str(photo_dir))
    assert first.returncode == 0, first.stderr
    assert "imported 14" in first.stdout

    with running_server(settings, "--prod", "--workers", "2") as base:
        # The first search may wait for the model to finish loading.
        body = httpx.get(f"{base}/api/search", params={"q": "mountain", "k": 50}, timeout=60).json()
        scores = [r["score"] for r in body["results"]]
        assert len(scores) == 14 and scores == sorted(scores, reverse=True)
        before = {r["id"] for r in body["results"]}

        second = scenery(settings, "import", str(later))
        assert second.returncode == 0 and "imported 1" in second.stdout, second.stderr
        # Each gunicorn worker catches its index up on its own (every 2 s here): poll until
        # four searches in a row, spread over both workers, find the new photo.
        wait_for(
            lambda: all(len(search_ids(base)) == 15 for _ in range(4)),
            30,
            "the new photo in the search results of every worker",
            step=0.25,
        )
        new_ids = search_ids(base) - before
        assert len(new_ids) == 1, new_ids
        [new_id] = new_ids
        assert httpx.get(f"{base}/api/images/{new_id}").json()["title"] == "wine.jpg"

        gone = scenery(settings, "delete", str(new_id))
        assert gone.returncode == 0, gone.stderr
        # Deletion takes effect at once: the database filter applies before the index refreshes.
        for _ in range(4):
            assert new_id not in search_ids(base)
        assert httpx.get(f"{base}/api/images/{new_id}").status_code == 404


def test_development_server_serves_pages(settings: Settings, photo_dir: Path) -> None:
    if "postgresql" in settings.db_url:
        pytest.skip("the development server is exercised once; gunicorn runs on both databases")
    assert scenery(settings, "import", str(photo_dir / "flow.jpg")).returncode == 0
    with running_server(settings) as base:
        home = httpx.get(base + "/")
        assert home.status_code == 200 and "1 photo" in home.text
        assert httpx.get(base + "/static/style.css").status_code == 200


def test_admin_login_and_csrf_hold_across_gunicorn_workers(settings: Settings) -> None:
    created = subprocess.run(
        [str(BIN / "scenery"), "admin", "create", "owner", "--password-stdin"],
        input="a long enough password\n",
        env=scenery_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert created.returncode == 0, created.stderr
    with (
        running_server(settings, "--prod", "--workers", "2") as base,
        httpx.Client(base_url=base, timeout=30) as client,
    ):
        assert client.get("/admin/queue").status_code == 302
        token = CSRF_RE.search(client.get("/admin/login").text)
        assert token
        form = {"username": "owner", "password": "a long enough password"}
        login = client.post("/admin/login", data={**form, "csrf_token": token.group(1)})
        assert login.status_code == 302 and login.headers["location"] == "/admin/"
        cookie = login.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie
        # Either worker accepts the session and the page's token (one key in the data dir).
        for _ in range(6):
            page = client.get("/admin/queue")
            assert page.status_code == 200 and "Approval queue" in page.text
        logout = client.post("/admin/logout", data={"csrf_token": token.group(1)})
        assert logout.status_code == 302
        assert client.get("/admin/queue").status_code == 302
        assert client.post("/admin/logout").status_code == 400  # no token
