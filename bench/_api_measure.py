"""What bench/api_latency.py asks one server, and the milliseconds each answer took.

Text queries are short and realistic (1-8 words, made from word lists) and never repeat within
a server's life unless the point is to repeat them: every "cache miss" text is asked there for
the first time; every "cache hit" text is one of those, asked again.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx

from bench._api_server import Server, WorkerMemory
from bench._photos import PHOTOS

SEARCH_MISS = "GET /api/search (cache misses)"
SEARCH_HIT = "GET /api/search (cache hits)"
SIMILAR = "GET /api/images/<id>/similar"
BY_IMAGE = "POST /api/search/image"
LISTING = "GET /api/images?page=1"
ENDPOINTS = [SEARCH_MISS, SEARCH_HIT, SIMILAR, BY_IMAGE, LISTING]
K = 20


def words(text: str) -> list[str]:
    return text.split()


SUBJECTS = words(
    "mountain lake forest beach river waterfall city street bridge castle village desert "
    "meadow canyon glacier volcano island harbour lighthouse cathedral market garden field "
    "dog cat horse deer fox owl eagle heron dragonfly butterfly flower tree leaf sunflower "
    "boat train car bicycle tent cabin road path tunnel tower skyline cliff cave dune reef"
)
ADJECTIVES = words(
    "misty foggy snowy rainy sunny frozen quiet empty old ancient tiny huge lonely wild "
    "autumn winter spring summer golden dark bright colourful green blue red purple orange "
    "calm stormy rocky sandy busy peaceful abandoned distant"
)
PLACES = words(
    "mountains forest sea lake river valley city hills desert jungle snow fog rain clouds "
    "meadow countryside coast harbour park garden street field"
)
TIMES = words("dawn dusk sunset sunrise night noon twilight")
COMPANIONS = words("reflection rainbow shadow crowd boat moon mist storm")
# Weights of the query lengths 1..8 words: most queries are two to four words long.
LENGTH_WEIGHTS = [2, 4, 4, 3, 2, 2, 1, 1]


def queries(seed: int = 7) -> Iterator[str]:
    """Distinct lower-case search texts of 1-8 words, in a fixed order."""
    rng = random.Random(seed)
    seen: set[str] = set()
    while True:
        words = rng.choices(range(1, 9), LENGTH_WEIGHTS)[0]
        text = " ".join(compose(rng, words))
        if text not in seen:
            seen.add(text)
            yield text


def compose(rng: random.Random, words: int) -> list[str]:
    """A phrase of exactly ``words`` words: adjectives, one subject, at most one phrase each
    of time, place and company."""
    head = [rng.choice(SUBJECTS)]
    phrases: dict[str, list[str]] = {}
    while len(head) + sum(map(len, phrases.values())) < words:
        room = words - len(head) - sum(map(len, phrases.values()))
        options = {
            "time": ["at", rng.choice(TIMES)],
            "place": [rng.choice(("in", "over", "near", "under")), "the", rng.choice(PLACES)],
            "company": ["with", rng.choice(("a", "the")), rng.choice(COMPANIONS)],
        }
        fitting = [k for k, v in options.items() if k not in phrases and len(v) <= room]
        kind = rng.choice([*fitting, "adjective", "adjective"])
        if kind == "adjective":
            head.insert(0, rng.choice([a for a in ADJECTIVES if a not in head]))
        else:
            phrases[kind] = options[kind]
    return head + [word for phrase in phrases.values() for word in phrase]


def timed(n: int, call: Callable[[int], httpx.Response]) -> list[float]:
    """Milliseconds of ``n`` requests made one after the other."""
    times = []
    for i in range(n):
        started = time.perf_counter()
        response = call(i)
        times.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    return times


@dataclass
class PathResult:
    """One server's figures."""

    load_average: float  # the machine's 1-minute load average at launch
    healthy_s: float
    first_search_s: float
    memory: WorkerMemory
    gallery: int
    times: dict[str, list[float]] = field(default_factory=dict)


def measure(server: Server, n: int, similar_ids: list[int]) -> PathResult:
    """Cold start, warm-up, worker memory, then every endpoint's latencies."""
    photos = [p.read_bytes() for p in sorted(PHOTOS.glob("*.jpg"))]
    texts = queries()
    load = os.getloadavg()[0]
    healthy = server.wait_healthy()
    with httpx.Client(base_url=server.base, timeout=120) as client:

        def search(text: str) -> httpx.Response:
            return client.get("/api/search", params={"q": text, "k": K})

        def by_image(i: int) -> httpx.Response:
            photo = photos[i % len(photos)]
            return client.post("/api/search/image", files={"image": ("q.jpg", photo, "image/jpeg")})

        def similar(i: int) -> httpx.Response:
            return client.get(f"/api/images/{similar_ids[i % len(similar_ids)]}/similar?k={K}")

        first = server.since_launch(lambda: search(next(texts)))
        for i in range(3):  # warm-up: each endpoint's first calls, with texts never asked again
            search(next(texts)).raise_for_status()
            similar(len(similar_ids) - 1 - i).raise_for_status()
            by_image(len(photos) - 1 - i).raise_for_status()
            client.get("/api/images").raise_for_status()
        memory = server.worker_memory()
        misses = [next(texts) for _ in range(n)]
        result = PathResult(load, healthy, first, memory, client.get("/api/images").json()["total"])
        result.times[SEARCH_MISS] = timed(n, lambda i: search(misses[i]))
        result.times[SEARCH_HIT] = timed(n, lambda i: search(misses[i]))
        result.times[SIMILAR] = timed(n, similar)
        result.times[BY_IMAGE] = timed(max(n // 4, 10), by_image)
        result.times[LISTING] = timed(n, lambda i: client.get("/api/images"))
    return result
