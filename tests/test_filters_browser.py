"""The filter bar in real headless Chromium: "fits my screen" gives a phone tall photos and a
21:9 monitor wide ones; filters show as chips that are removed one by one; URLs carry them."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect
from werkzeug.serving import make_server

from scenery.config import Settings
from scenery.importer import Importer
from tests.fakes.embedders import ColourEmbedder, solid
from web import create_app

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# name: (colour, size in pixels)
PHOTOS = {
    "tall": ((30, 90, 200), (1290, 2796)),  # a phone wallpaper
    "wide": ((230, 120, 20), (3440, 1440)),  # an ultrawide one
    "land": ((40, 160, 60), (1920, 1280)),
    "square": ((200, 40, 40), (1200, 1200)),
    "fern": ((30, 140, 50), (1200, 1800)),
}


@pytest.fixture
def server(settings: Settings, tmp_path: Path) -> Iterator[tuple[str, dict[str, int]]]:
    app = create_app(settings, embedder=ColourEmbedder())
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, (colour, size) in PHOTOS.items():
        solid(colour, size).save(folder / f"{name}.png")
    report = Importer(app.extensions["scenery"]).run(sorted(folder.iterdir()))
    ids = {path.stem: image_id for path, image_id in report.imported}
    http = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{http.server_port}", ids
    http.shutdown()
    app.extensions["scenery"].close()


def shown(page) -> set[str]:  # type: ignore[no-untyped-def]
    return set(page.locator(".grid > .tile").evaluate_all("els => els.map(e => e.href)"))


@pytest.mark.parametrize(
    ("device", "screen", "scale", "fits", "expected"),
    [
        ("phone", {"width": 430, "height": 932}, 3, "1290x2796", "tall"),
        ("monitor", {"width": 3440, "height": 1440}, 1, "3440x1440", "wide"),
    ],
)
def test_fits_my_screen_keeps_what_covers_this_screen(
    server: tuple[str, dict[str, int]],
    page,  # type: ignore[no-untyped-def]
    artifacts: Path,
    device: str,
    screen: dict[str, int],
    scale: int,
    fits: str,
    expected: str,
) -> None:
    base, ids = server
    browser = page.context.browser
    viewport = {"width": min(screen["width"], 1280), "height": min(screen["height"], 900)}
    context = browser.new_context(screen=screen, viewport=viewport, device_scale_factor=scale)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.goto(base + "/")
    expect(tab.locator(".grid > .tile")).to_have_count(len(PHOTOS))
    tab.click("button.fits-screen")
    tab.wait_for_url(re.compile(rf"fits={fits}"))
    expect(tab.locator(".grid > .tile")).to_have_count(1)
    assert shown(tab) == {f"{base}/image/{ids[expected]}"}
    expect(tab.locator(".chip[data-filter=fits]")).to_contain_text(f"fits {fits}")
    tab.wait_for_load_state("networkidle")
    tab.screenshot(path=str(artifacts / f"filters-fits-{device}.png"), full_page=True)
    assert not errors
    context.close()


def test_chips_come_off_one_by_one_and_the_url_carries_the_filters(
    server: tuple[str, dict[str, int]],
    page,  # type: ignore[no-untyped-def]
    artifacts: Path,
) -> None:
    base, ids = server
    page.goto(base + "/")
    page.select_option("select[name=orientation]", "landscape")
    page.select_option("select[name=color]", "green")
    page.click(".filter-bar button[type=submit]")
    page.wait_for_url(re.compile(r"orientation=landscape.*color=green|color=green.*orientation"))
    assert shown(page) == {f"{base}/image/{ids['land']}"}
    expect(page.locator(".chips .chip")).to_have_count(2)
    page.screenshot(path=str(artifacts / "filters-chips.png"), full_page=True)
    bookmarked = page.url
    page.goto(bookmarked)  # a shared link gives the same page
    assert shown(page) == {f"{base}/image/{ids['land']}"}
    page.click(".chip[data-filter=orientation] a")
    expect(page.locator(".chips .chip")).to_have_count(1)
    assert shown(page) == {f"{base}/image/{ids['land']}", f"{base}/image/{ids['fern']}"}
    assert "orientation=" not in page.url and "color=green" in page.url
    page.click(".chip[data-filter=color] a")
    expect(page.locator(".chips .chip")).to_have_count(0)
    expect(page.locator(".grid > .tile")).to_have_count(len(PHOTOS))
    # a filter nothing matches says so, and keeps its chip to take it off again
    page.goto(base + "/?color=purple")
    expect(page.locator(".empty-filtered")).to_be_visible()
    expect(page.locator(".chip[data-filter=color]")).to_have_count(1)
