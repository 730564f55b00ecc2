"""The owner's review session in real headless Chromium: log in, approve from the keyboard,
reject with a reason, unpublish, and see each decision in the gallery and search."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect
from werkzeug.serving import make_server

from scenery.embed import OpenClipEmbedder
from scenery.models import ImageStatus
from scenery.queue import Job
from tests.admin_world import ADMIN, PASSWORD, AdminWorld, admin_world

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def served(
    tmp_path: Path, db_url: str, photos: list[Path], tiny_embedder: OpenClipEmbedder
) -> Iterator[tuple[AdminWorld, str]]:
    with admin_world(tmp_path, db_url, photos, tiny_embedder) as world:
        http = make_server("127.0.0.1", 0, world.app, threaded=True)
        thread = threading.Thread(target=http.serve_forever, daemon=True)
        thread.start()
        yield world, f"http://127.0.0.1:{http.server_port}"
        http.shutdown()


def search_ids(page, base: str) -> list[str]:  # type: ignore[no-untyped-def]
    page.goto(base + "/search?q=landscape&k=50")
    return page.locator(".grid > .tile").evaluate_all(
        "els => els.map(e => e.getAttribute('href').split('/').pop())"
    )


def test_review_session_in_chromium(
    served: tuple[AdminWorld, str], page, artifacts: Path, db_url: str
) -> None:  # type: ignore[no-untyped-def]
    world, base = served
    backend = "pg" if "postgresql" in db_url else "sqlite"
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    page.on("dialog", lambda dialog: dialog.accept())

    page.goto(base + "/admin/queue")
    page.wait_for_url(re.compile(r"/admin/login\?next="))
    page.fill("input[name=username]", ADMIN)
    page.fill("input[name=password]", PASSWORD)
    page.screenshot(path=str(artifacts / f"admin-login-{backend}.png"))
    page.click("button:has-text('Log in')")
    page.wait_for_url("**/admin/queue")
    expect(page.locator(".card")).to_have_count(5)
    expect(page.locator("#queue-count")).to_have_text("5")
    page.wait_for_load_state("networkidle")
    assert page.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
    page.screenshot(path=str(artifacts / f"admin-queue-{backend}.png"), full_page=True)

    # Keyboard: the first card has focus; j moves on, a approves the focused one.
    first = page.locator(".card").first
    expect(first).to_have_class("card current")
    page.keyboard.press("j")
    second = page.locator(".card").nth(1)
    expect(second).to_have_class("card current")
    approved = second.get_attribute("data-id")
    page.keyboard.press("a")
    expect(second).to_have_attribute("data-decided", "approve")
    expect(page.locator("#queue-count")).to_have_text("4")
    assert world.status(int(approved)) == ImageStatus.PUBLISHED

    # A click: reject another with a reason.
    rejected = first.get_attribute("data-id")
    first.locator("button:has-text('watermark')").click()
    expect(first).to_have_attribute("data-decided", "reject:watermark")
    expect(page.locator("#queue-count")).to_have_text("3")
    page.screenshot(path=str(artifacts / f"admin-queue-decided-{backend}.png"))

    # The approval is in the gallery and in a text search at once.
    page.goto(base + "/")
    expect(page.locator(f'.grid a[href="/image/{approved}"]')).to_have_count(1)
    assert approved in search_ids(page, base)
    assert rejected not in search_ids(page, base)

    # The rejection is in the rejected log with its reason, and filtering by it finds it.
    page.goto(base + "/admin/rejected")
    page.select_option("select[name=reason]", "watermark")
    page.click("button:has-text('Filter')")
    page.wait_for_url(re.compile(r"/admin/rejected\?reason=watermark"))
    expect(page.locator("table.log > tbody > tr")).to_have_count(1)
    expect(page.locator("table.log > tbody")).to_contain_text("watermark")
    page.screenshot(path=str(artifacts / f"admin-rejected-{backend}.png"), full_page=True)

    # Unpublish the approved image: gone from search.
    page.goto(base + "/admin/images")
    row = page.locator(f'tr[data-id="{approved}"]')
    row.locator("button:has-text('Unpublish')").click()
    expect(page.locator(".flash")).to_contain_text("Unpublished 1")
    assert approved not in search_ids(page, base)
    page.goto(base + "/admin/images")
    page.screenshot(path=str(artifacts / f"admin-images-{backend}.png"), full_page=True)

    # Follow a subreddit through the form and run it now: the run is queued for a worker (none
    # runs in this test), and nothing is ingested by the web process.
    page.goto(base + "/admin/subscriptions")
    page.fill("input[name=new-subreddit]", "EarthPorn")
    page.select_option("select[name=new-listing]", "new")
    page.fill("input[name=new-post_limit]", "50")
    page.click("button:has-text('Add')")
    expect(page.locator(".flash")).to_contain_text("Saved r/EarthPorn")
    expect(page.locator(".subscription .next-run")).to_contain_text("due now")
    page.click("button:has-text('Run now')")
    expect(page.locator(".flash", has_text="Queued: a worker runs it now")).to_be_visible()
    expect(page.locator(".subscription .lease")).to_contain_text(
        "Claimed by web:owner, waiting for a worker"
    )
    expect(page.locator("#no-workers")).to_be_visible()
    expect(page.locator(".subscription table.runs tbody tr")).to_have_count(1)
    expect(page.locator(".subscription table.runs tbody")).to_contain_text("queued")
    expect(page.locator(".subscription .summary")).to_have_count(0)
    page.screenshot(path=str(artifacts / f"admin-subscriptions-{backend}.png"), full_page=True)
    tasks = [t.name for t in world.ctx.queue.huey.pending()]
    assert tasks.count(Job.INGEST.value) == 1

    for name in ("duplicates", ""):
        page.goto(f"{base}/admin/{name}")
        page.wait_for_load_state("networkidle")
        shot = name or "dashboard"
        page.screenshot(path=str(artifacts / f"admin-{shot}-{backend}.png"), full_page=True)
    assert page.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
    assert errors == []
