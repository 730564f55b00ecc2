"""Locust visitors for bench/load.py: browse, look at images, search, with 0.5-1.5 s think time.

Run by bench/load.py as ``locust -f bench/_load_locustfile.py --headless ... --targets FILE
--record FILE``: ``--targets`` is a JSON file of published image ids and content hashes,
``--record`` where every request is written (name, start, milliseconds, error) when locust
quits, so load.py computes its own percentiles over exact times.
"""

from __future__ import annotations

import json
import random
from functools import cache
from pathlib import Path
from typing import Any

from locust import HttpUser, between, events, task

QUERIES = (
    "mountain",
    "misty lake at dawn",
    "forest path",
    "sunset over the sea",
    "snowy peaks",
    "autumn leaves",
    "a bridge over a river",
    "waterfall in the jungle",
    "evening glow",
    "wild flowers",
)
RECORDED: list[tuple[str, float, float, str | None]] = []


@events.init_command_line_parser.add_listener
def _arguments(parser: Any) -> None:
    parser.add_argument("--targets", help="JSON: published ids, hashes, pages")
    parser.add_argument("--record", help="where to write every request when locust quits")


@events.request.add_listener
def _record(
    name: str, start_time: float, response_time: float, exception: BaseException | None, **_: Any
) -> None:
    RECORDED.append((name, start_time, response_time, repr(exception)[:200] if exception else None))


@events.quitting.add_listener
def _write(environment: Any, **_: Any) -> None:
    Path(environment.parsed_options.record).write_text(json.dumps(RECORDED))


@cache
def _targets(path: str) -> dict[str, Any]:
    """Read once per locust process: parsing it for every user would stall the event loop
    (and inflate the times of requests in flight) while users spawn."""
    return dict(json.loads(Path(path).read_text()))


class Visitor(HttpUser):
    """Someone browsing the gallery (weights: what they do most)."""

    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        targets = _targets(self.environment.parsed_options.targets)
        self.ids: list[int] = targets["ids"]
        self.shas: list[str] = targets["shas"]
        self.pages: int = targets["pages"]

    def _page(self) -> int:
        # Most visits are to the first pages; some go deep (SQLite OFFSET grows with the page).
        return 1 if random.random() < 0.5 else random.randint(1, self.pages)

    @task(3)
    def home(self) -> None:
        self.client.get(f"/?page={self._page()}", name="/?page=N")

    @task(3)
    def image_page(self) -> None:
        self.client.get(f"/image/{random.choice(self.ids)}", name="/image/<id>")

    @task(4)
    def thumbnail(self) -> None:
        self.client.get(f"/thumbs/400/{random.choice(self.shas)}.jpg", name="/thumbs/400/<sha>.jpg")

    @task(2)
    def api_list(self) -> None:
        self.client.get(f"/api/images?page={self._page()}", name="/api/images?page=N")

    @task(2)
    def similar(self) -> None:
        self.client.get(
            f"/api/images/{random.choice(self.ids)}/similar", name="/api/images/<id>/similar"
        )

    @task(1)
    def api_search(self) -> None:
        query = f"{random.choice(QUERIES)} {random.randint(1, 1000)}"  # varied, as people type
        self.client.get("/api/search", params={"q": query}, name="/api/search?q=...")

    @task(1)
    def html_search(self) -> None:
        query = f"{random.choice(QUERIES)} {random.randint(1, 1000)}"
        self.client.get("/search", params={"q": query}, name="/search?q=...")
