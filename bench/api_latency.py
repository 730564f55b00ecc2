"""End-to-end latency of the JSON API over HTTP, against a real gunicorn server.

Run: ``python bench/api_latency.py [--requests 100] [--model tiny-test] [--quick]``. Imports the
sample photos into a temporary SQLite data dir, starts ``scenery serve --prod --workers 1``, and
times ``/api/search`` (text: CLIP text encoding + HNSW + database), ``/api/images/<id>/similar``
and ``POST /api/search/image`` from a keep-alive client on the same machine. The gallery's size
is what the server reports (``/api/images``' total). No SCENERY_* variable of the calling shell
is passed on. ``--quick``: 5 requests per endpoint (10 image searches), a smoke run.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._photos import PHOTOS

BIN = Path(sys.executable).parent
QUERIES = [
    "mountain",
    "misty lake at dawn",
    "forest path",
    "sunset over the sea",
    "snowy peaks",
    "autumn leaves",
    "a dog",
    "waterfall in the jungle",
    "city lights",
    "desert dunes",
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed(n: int, call: Callable[[int], httpx.Response]) -> list[float]:
    times = []
    for i in range(n):
        started = time.perf_counter()
        response = call(i)
        times.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    return times


def wait_ready(base: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit("server did not start")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def measure(client: httpx.Client, n: int) -> dict[str, list[float]]:
    """Milliseconds of each request, per endpoint."""
    photo = sorted(PHOTOS.glob("*.jpg"))[0].read_bytes()
    client.get("/api/search", params={"q": "warm up"}).raise_for_status()
    ids = [r["id"] for r in client.get("/api/images?per_page=50").json()["images"]]
    return {
        "GET /api/search?q=...&k=20": timed(
            n,
            lambda i: client.get(
                "/api/search", params={"q": f"{QUERIES[i % len(QUERIES)]} {i}", "k": 20}
            ),
        ),
        "GET /api/images/<id>/similar": timed(
            n, lambda i: client.get(f"/api/images/{ids[i % len(ids)]}/similar?k=20")
        ),
        "POST /api/search/image": timed(
            max(n // 4, 10),
            lambda i: client.post(
                "/api/search/image", files={"image": ("q.jpg", photo, "image/jpeg")}
            ),
        ),
        "GET /api/images?page=1": timed(n, lambda i: client.get("/api/images")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--model", default="tiny-test")
    parser.add_argument("--port", type=int, default=0, help="default: a free port")
    parser.add_argument("--quick", action="store_true", help="smoke run: 5 requests each")
    args = parser.parse_args()
    if args.quick:
        args.requests = 5
    port = args.port or free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCENERY_")}
        env.update(
            SCENERY_DATA_DIR=tmp, SCENERY_CLIP_MODEL=args.model, SCENERY_CLIP_PRETRAINED="none"
        )
        subprocess.run([BIN / "scenery", "import", str(PHOTOS)], env=env, check=True)
        server = subprocess.Popen(
            [BIN / "scenery", "serve", "--prod", "--workers", "1", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            wait_ready(base)
            with httpx.Client(base_url=base, timeout=60) as client:
                results = measure(client, args.requests)
                gallery = client.get("/api/images").json()["total"]
        finally:
            server.terminate()
            server.wait(timeout=10)
    print(
        f"model {args.model}, {gallery} images in the gallery, gunicorn 1 worker, "
        "keep-alive client, same machine"
    )
    print(f"{'endpoint':32} {'n':>4} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'mean':>8}")
    for name, times in results.items():
        print(
            f"{name:32} {len(times):4d} {statistics.median(times):8.2f} "
            f"{percentile(times, 0.9):8.2f} {percentile(times, 0.99):8.2f} "
            f"{statistics.fmean(times):8.2f}"
        )


if __name__ == "__main__":
    main()
