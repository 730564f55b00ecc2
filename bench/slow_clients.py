"""Slow clients against the production server: how fast ``/healthz`` answers while connections
hang on half-sent requests and uploads trickle their bodies, for gunicorn's sync workers (what
``scenery serve --prod`` ran before), its threaded workers, and ``scenery serve --prod``
(gevent workers configured by scenery.serving).

Run: ``python bench/slow_clients.py [--workers 2] [--half-open 50] [--uploads 20]
[--seconds 10] [--quick]``. About 3 minutes on 2 cores, most of it starting servers.
``--quick``: one worker, 10 half-sent requests, 4 uploads, 3 s, no threaded setup: a smoke run.

For each setup: a server on a fresh SQLite data dir with the tiny model (no SCENERY_* variable
of the calling shell is passed on), ready once ``/healthz`` answers and a text search has
succeeded (the first one's status and time are reported: it waits for the model unless the
server loaded it before answering). Then ``--half-open`` connections each send a request line
and part of the headers and wait (one the server drops is replaced at once, as a slowloris
attacker does), and ``--uploads`` ``POST /api/search/image`` requests send their headers and
1 KiB of a sample photo, then 16 bytes per round. Each round sends those bytes, probes
``/healthz`` on a new connection (answers after 5 s count as timed out) and waits up to 0.25 s
for the server to drop a half-sent request. After ``--seconds`` the uploads send the rest of
their bodies and get 15 s to be answered.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._load_processes import free_port, started, tail
from bench._photos import PHOTOS
from tests.slowloris import HalfOpen, SlowUpload, probe

# Where ONNX exports are cached: passed on, so a child process does not export the model again.
ONNX_CACHE = "SCENERY_ONNX_DIR"

BIN = Path(sys.executable).parent
PHOTO = PHOTOS / "flow.jpg"
PROBE_TIMEOUT = 5.0
FINISH_SECONDS = 15.0


@dataclass
class Result:
    setup: str
    probes: list[float] = field(default_factory=list)  # seconds; inf: no answer in time
    dropped: int = 0  # half-sent requests the server dropped
    uploads_ok: int = 0
    first_search: tuple[int, float] = (0, 0.0)  # status (0: no answer) and seconds


def setups(workers: int, quick: bool) -> list[tuple[str, list[str]]]:
    """Each setup's name and command (the port is appended)."""
    gunicorn = [str(BIN / "gunicorn"), "--workers", str(workers), "--access-logfile", "-"]
    chosen = [("sync workers (before)", [*gunicorn, "web.wsgi:app", "--bind"])]
    if not quick:
        threaded = [*gunicorn, "-k", "gthread", "--threads", "4", "web.wsgi:app", "--bind"]
        chosen.append(("gthread, 4 threads", threaded))
    serve = [str(BIN / "scenery"), "serve", "--prod", "--workers", str(workers), "--port"]
    chosen.append(("scenery serve --prod", serve))
    return chosen


def ready(base: str, log: Path) -> tuple[int, float]:
    """Wait for ``/healthz``, then for a text search to succeed (the model loaded); the first
    search's status and seconds."""
    deadline = time.monotonic() + 300
    while probe(base, timeout=2) == float("inf"):
        if time.monotonic() > deadline:
            raise SystemExit(f"the server did not start:\n{tail(log)}")
        time.sleep(0.5)
    outcomes = [search(base) for _ in range(2)]
    while outcomes[-1][0] != 200:
        if time.monotonic() > deadline:
            raise SystemExit(f"search never answered:\n{tail(log)}")
        outcomes.append(search(base))
    return outcomes[0]


def search(base: str) -> tuple[int, float]:
    """Status (0: no answer) and seconds of one text search."""
    started = time.perf_counter()
    try:
        status = httpx.get(f"{base}/api/search", params={"q": "warm up"}, timeout=120).status_code
    except httpx.HTTPError:
        status = 0
    return status, time.perf_counter() - started


def attack(base: str, port: int, args: argparse.Namespace, result: Result) -> None:
    """Hold the slow clients for ``args.seconds`` while probing ``/healthz``."""
    image = PHOTO.read_bytes()
    half_open = HalfOpen(port, args.half_open)
    uploads = [SlowUpload(port, image) for _ in range(args.uploads)]
    try:
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            for upload in uploads:
                upload.trickle()
            result.probes.append(probe(base, timeout=PROBE_TIMEOUT))
            half_open.wait_for_a_close(at_most=0.25)
            half_open.top_up()
        result.dropped = half_open.replaced
        result.uploads_ok = finish(uploads)
    finally:
        half_open.close()
        for upload in uploads:
            upload.close()


def finish(uploads: list[SlowUpload]) -> int:
    """Send every upload's remaining body; how many were answered 200 in time."""
    for upload in uploads:
        upload.trickle()  # all but the last byte: every body ends at about the same moment
    deadline = time.monotonic() + FINISH_SECONDS
    ok = 0
    for upload in uploads:
        try:
            status, _ = upload.finish(timeout=max(0.1, deadline - time.monotonic()))
        except OSError:  # timed out or reset
            continue
        ok += status == 200
    return ok


def run(name: str, command: list[str], args: argparse.Namespace, root: Path) -> Result:
    """Start the setup on a fresh data dir in ``root``, attack it, stop it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCENERY_") or k == ONNX_CACHE}
    env.update(SCENERY_DATA_DIR=str(root), SCENERY_CLIP_MODEL="tiny-test")
    subprocess.run([str(BIN / "scenery"), "init"], env=env, check=True, capture_output=True)
    port = free_port()
    log = root / "server.log"
    address = f"127.0.0.1:{port}" if "--bind" in command else str(port)
    base = f"http://127.0.0.1:{port}"
    result = Result(name)
    print(f"[{name}] starting", file=sys.stderr, flush=True)
    with started([*command, address], env, log):
        result.first_search = ready(base, log)
        print(f"[{name}] attacking for {args.seconds} s", file=sys.stderr, flush=True)
        attack(base, port, args, result)
    return result


def report(results: list[Result], args: argparse.Namespace) -> None:
    print(
        f"slow clients against gunicorn, {args.workers} worker(s), tiny-test model, SQLite: "
        f"{args.half_open} connections hanging on half-sent requests and {args.uploads} "
        f"trickling uploads (POST /api/search/image), {args.seconds:g} s"
    )
    head = f"{'setup':24} {'probes':>6} {'under 1 s':>9} {'timed out':>9}"
    head += f" {'p50 ms':>8} {'max ms':>8} {'dropped':>8} {'uploads answered':>17}"
    print(f"{head}   first search")
    for r in results:
        answered = [s * 1000 for s in r.probes if s != float("inf")]
        p50 = f"{statistics.median(answered):8.1f}" if answered else f"{'-':>8}"
        top = f"{max(answered):8.1f}" if answered else f"{'-':>8}"
        fast = sum(s < 1.0 for s in r.probes)
        slow = len(r.probes) - len(answered)
        print(
            f"{r.setup:24} {len(r.probes):6d} {fast:9d} {slow:9d} {p50} {top} "
            f"{r.dropped:8d} {r.uploads_ok:>11d} of {args.uploads}   "
            f"{r.first_search[0]} in {r.first_search[1]:.2f} s"
        )
    print(
        f"(probes: GET /healthz on a new connection, timed out after {PROBE_TIMEOUT:g} s; "
        "dropped: half-sent requests the server closed; uploads answered: 200 within "
        f"{FINISH_SECONDS:g} s of their last byte; first search: the status and time of the "
        "first text search once /healthz answered, before any attack)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--half-open", type=int, default=50)
    parser.add_argument("--uploads", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true", help="smoke run: see the docstring")
    args = parser.parse_args()
    if args.quick:
        args.workers, args.half_open, args.uploads, args.seconds = 1, 10, 4, 3.0
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, command in setups(args.workers, args.quick):
            results.append(run(name, command, args, Path(tmp) / name.split()[0]))
    report(results, args)


if __name__ == "__main__":
    main()
