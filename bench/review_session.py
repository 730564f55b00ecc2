"""What reviewing 100 queued images costs the owner: keys, clicks, page loads and time.

Run: ``python bench/review_session.py [--items 100]``. Imports distinct photo variants as queued
images (tiny model, fresh SQLite data dir), serves the gallery on 127.0.0.1, logs in with real
Chromium (Debian's ``/usr/bin/chromium`` through Playwright) and clears the queue from the
keyboard the way an owner would: ``a`` approves, ``1``-``5`` reject with a reason; the focus
moves on by itself and the next page of the queue loads when one is done.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from werkzeug.serving import make_server

from bench._photos import photo_variants
from scenery.accounts import create_user
from scenery.config import Settings
from scenery.db import transaction
from scenery.importer import Importer
from scenery.models import ImageStatus
from tests.conftest import CHROMIUM, CHROMIUM_ARGS
from web import create_app

KEYS = "a1a2a3a4a5"  # approve half, reject the other half over the five reasons


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=100)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        settings = Settings(
            data_dir=root / "data", clip_model="tiny-test", warm_up=False, gallery_fit=False
        )
        app = create_app(settings)
        ctx = app.extensions["scenery"]
        files = photo_variants(root / "photos", args.items)
        report = Importer(ctx, publish=False).run(files)
        queued = len(report.imported)
        with transaction(ctx.sessions) as session:
            create_user(session, "owner", "bench password")
        http = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=http.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{http.server_port}"
        loads, keys, clicks = 0, 0, 0
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 860})

            def count_load(frame) -> None:  # type: ignore[no-untyped-def]
                nonlocal loads
                if frame == page.main_frame:
                    loads += 1

            page.on("framenavigated", count_load)
            page.goto(base + "/admin/queue")  # redirected to the login page
            page.fill("input[name=username]", "owner")
            page.fill("input[name=password]", "bench password")
            keys += len("owner") + len("bench password")
            page.click("button:has-text('Log in')")
            clicks += 1
            page.wait_for_selector(".card.current")
            started = time.perf_counter()
            decided = 0
            while decided < queued:
                page.wait_for_selector(".card.current", timeout=30_000)
                page.keyboard.press(KEYS[decided % len(KEYS)])
                keys += 1
                decided += 1
                page.wait_for_function(
                    "n => parseInt(document.getElementById('queue-count')?.textContent ?? '0') "
                    "<= n || !document.querySelector('.card:not(.done)')",
                    arg=queued - decided,
                )
            elapsed = time.perf_counter() - started
            page.wait_for_selector(".empty", timeout=30_000)
            browser.close()
        http.shutdown()
        with ctx.sessions() as session:
            from sqlalchemy import func, select

            from scenery.models import Image

            left = session.scalar(
                select(func.count()).select_from(Image).where(Image.status == ImageStatus.QUEUED)
            )
        ctx.close()
    per = 100 / max(queued, 1)
    print(f"review session: {queued} queued images decided, {left} left in the queue")
    print(f"  decision keys:   {queued}  ({queued * per:.0f} per 100 items)")
    print(f"  login: {clicks} click, {len('owner') + len('bench password')} keys typed")
    print(f"  page loads:      {loads} in all (login page, queue pages, the empty queue)")
    print(
        f"  time deciding:   {elapsed:.1f} s, {elapsed / max(queued, 1) * 1000:.0f} ms per decision"
    )


if __name__ == "__main__":
    main()
