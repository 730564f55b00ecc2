"""A person's path through the gallery in real headless Chromium, with screenshots."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect
from werkzeug.serving import make_server

from scenery.config import Settings
from scenery.embed import OpenClipEmbedder
from scenery.importer import Importer, discover
from web import create_app

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def server(settings: Settings, photo_dir: Path, tiny_embedder: OpenClipEmbedder) -> Iterator[str]:
    app = create_app(settings.model_copy(update={"page_size": 6}), embedder=tiny_embedder)
    Importer(app.extensions["scenery"]).run(discover([photo_dir]))
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{http.server_port}"
    http.shutdown()
    app.extensions["scenery"].close()


def test_browse_search_and_open_an_image(
    server: str, page, artifacts: Path, settings: Settings
) -> None:  # type: ignore[no-untyped-def]
    backend = "pg" if "postgresql" in settings.db_url else "sqlite"
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))

    page.goto(server + "/")
    page.wait_for_load_state("networkidle")
    assert page.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
    page.screenshot(path=str(artifacts / f"home-{backend}.png"))

    # Pages hold 6 photos; scrolling down appends the later pages in place.
    for _ in range(4):
        page.mouse.wheel(0, 20000)
        page.wait_for_timeout(300)
    expect(page.locator(".grid > .tile")).to_have_count(15)
    expect(page.locator(".pager")).to_contain_text("Page 3 of 3")
    hrefs = page.locator(".grid > .tile").evaluate_all("els => els.map(e => e.href)")
    assert len(set(hrefs)) == 15

    page.fill("input[name=q]", "snowy mountain ridge")
    page.press("input[name=q]", "Enter")
    page.wait_for_url("**/search?q=snowy+mountain+ridge")
    assert page.input_value("input[name=q]") == "snowy mountain ridge"
    scores = [
        float(s)
        for s in page.locator(".tile .score").evaluate_all("els => els.map(e => e.dataset.score)")
    ]
    assert len(scores) == 15 and scores == sorted(scores, reverse=True)
    page.screenshot(path=str(artifacts / f"search-{backend}.png"))

    page.locator(".grid > .tile").first.click()
    page.wait_for_url("**/image/*")
    assert page.locator("h1").inner_text()
    assert page.locator(".similar-photos .tile").count() == 12
    assert page.locator("img.photo-large").evaluate("i => i.complete && i.naturalWidth > 0")
    page.screenshot(path=str(artifacts / f"image-{backend}.png"), full_page=True)
    assert errors == []


def test_search_by_image_upload(
    server: str, page, artifacts: Path, photos: list[Path], settings: Settings
) -> None:  # type: ignore[no-untyped-def]
    backend = "pg" if "postgresql" in settings.db_url else "sqlite"
    page.goto(server + "/search/image")
    page.set_input_files("input[name=image]", str(photos[3]))
    assert page.locator(".dropzone img.preview").count() == 1
    page.click("button:has-text('Find similar')")
    page.wait_for_selector(".grid .tile")
    first = page.locator(".grid .tile .score").first
    assert float(first.get_attribute("data-score")) > 0.999  # the same photo is in the gallery
    page.screenshot(path=str(artifacts / f"search-by-image-{backend}.png"))
