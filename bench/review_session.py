"""What reviewing 100 queued images costs the owner: keys, clicks, page loads and time.

Run: ``python bench/review_session.py [--items 100] [--quick]``. Imports distinct photo variants
as queued images (tiny model, fresh SQLite data dir), serves the gallery on 127.0.0.1, logs in
with real Chromium (Debian's ``/usr/bin/chromium`` through Playwright) and clears the queue from
the keyboard the way an owner would: ``a`` approves, ``1``-``5`` reject with a reason; the focus
moves on by itself and the next page of the queue loads when one is done. Keys and clicks are
counted as they are sent, page loads as the browser reports them, and the decisions from the
database afterwards. ``--quick``: 4 items, a smoke run.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, select
from werkzeug.serving import make_server

from bench._photos import photo_variants
from scenery.accounts import create_user
from scenery.config import Settings
from scenery.context import Context
from scenery.db import transaction
from scenery.importer import Importer
from scenery.models import Image, ImageStatus
from tests.conftest import CHROMIUM, CHROMIUM_ARGS
from web import create_app

KEYS = "a1a2a3a4a5"  # approve half, reject the other half over the five reasons
USER, PASSWORD = "owner", "bench password"


@dataclass
class Review:
    """What the owner did in the browser, counted as it was sent or seen."""

    login_keys: int = 0
    login_clicks: int = 0
    decision_keys: int = 0
    loads: int = 0
    seconds: float = 0.0


def review(page: Any, base: str, queued: int) -> Review:
    """Log in and clear the queue from the keyboard, counting every key, click and load."""
    session = Review()

    def count_load(frame: Any) -> None:
        if frame == page.main_frame:
            session.loads += 1

    page.on("framenavigated", count_load)
    page.goto(base + "/admin/queue")  # redirected to the login page
    page.fill("input[name=username]", USER)
    page.fill("input[name=password]", PASSWORD)
    session.login_keys += len(USER) + len(PASSWORD)
    page.click("button:has-text('Log in')")
    session.login_clicks += 1
    page.wait_for_selector(".card.current, .empty", timeout=30_000)  # the queue's first page
    started = time.perf_counter()
    while True:
        # A focused card to decide, or the empty queue (after the last page reloads).
        page.wait_for_selector(".card.current, .empty", timeout=30_000)
        if page.query_selector(".empty") is not None:
            break
        if session.decision_keys == queued:
            raise SystemExit(f"{queued} keys pressed and the queue is not empty yet")
        key = KEYS[session.decision_keys % len(KEYS)]
        page.keyboard.press(key)
        session.decision_keys += 1
        page.wait_for_function(
            "n => parseInt(document.getElementById('queue-count')?.textContent ?? '0') "
            "<= n || !document.querySelector('.card:not(.done)')",
            arg=queued - session.decision_keys,
        )
    session.seconds = time.perf_counter() - started
    return session


def statuses(ctx: Context) -> Counter[str]:
    """Images by status, from the database."""
    with ctx.sessions() as db:
        rows = db.execute(select(Image.status, func.count()).group_by(Image.status)).all()
    return Counter({str(ImageStatus(status).value): n for status, n in rows})


def serve_and_review(app: Any, queued: int) -> Review:
    from playwright.sync_api import sync_playwright

    http = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 860})
                return review(page, f"http://127.0.0.1:{http.server_port}", queued)
            finally:
                browser.close()
    finally:
        http.shutdown()


def report(session: Review, queued: int, after: Counter[str]) -> None:
    left = after[ImageStatus.QUEUED.value]
    decided = queued - left
    print(f"review session: {queued} queued images, {decided} decided, {left} left in the queue")
    print(f"  decisions:       {', '.join(f'{s} {n}' for s, n in sorted(after.items()))}")
    print(
        f"  decision keys:   {session.decision_keys}  "
        f"({session.decision_keys * 100 / max(decided, 1):.0f} per 100 decisions)"
    )
    print(f"  login: {session.login_clicks} click, {session.login_keys} keys typed")
    print(f"  page loads:      {session.loads} in all (login page, queue pages, the empty queue)")
    print(
        f"  time deciding:   {session.seconds:.1f} s, "
        f"{session.seconds / max(decided, 1) * 1000:.0f} ms per decision"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="smoke run: 4 items")
    args = parser.parse_args()
    if args.quick:
        args.items = 4
    if not CHROMIUM.exists():
        raise SystemExit(f"{CHROMIUM} is missing: apt-get install chromium")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        settings = Settings(
            data_dir=root / "data", clip_model="tiny-test", warm_up=False, gallery_fit=False
        )
        app = create_app(settings)
        ctx = app.extensions["scenery"]
        try:
            files = photo_variants(root / "photos", args.items)
            queued = len(Importer(ctx, publish=False).run(files).imported)
            with transaction(ctx.sessions) as db:
                create_user(db, USER, PASSWORD)
            session = serve_and_review(app, queued)
            after = statuses(ctx)
        finally:
            ctx.close()
    report(session, queued, after)


if __name__ == "__main__":
    main()
