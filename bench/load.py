"""A bounded load test: locust visitors against ``scenery serve --prod --workers 2`` (gunicorn)
over a SQLite gallery of 10,000 published images, while a worker ingests from a fake Reddit.

Run: ``python bench/load.py [--images 10000] [--users 10,25,50] [--duration 45]
[--feed-per-minute 30] [--no-ingest] [--data-dir DIR] [--quick]``. About 7-9 minutes with the
defaults on 2 cores, a third of it building the gallery; ``--data-dir`` keeps the gallery (and
the logs) for the next run, which then skips the build. ``--no-ingest`` runs no worker: the
server alone, a baseline to compare with. ``--quick``: 100 images, one level of 3 users for
10 s, a smoke run.

- The gallery: ``bench/_load_data.py`` (real files and rows; crops of the sample photos, and
  embeddings that are random unit vectors near the tiny model's, not the images' own), then
  ``scenery reindex``. Tiny model (SCENERY_CLIP_MODEL=tiny-test); no other SCENERY_* variable
  of the calling shell is passed on.
- The ingest: a fake Reddit (tests/fakes) in this process, a subscription followed at every
  scheduler tick (``--every 0``, tick 2 s) and ``scenery worker``; new posts with fresh photos
  arrive while the users browse, so runs download, decide and publish during every level.
- The users: ``bench/_load_locustfile.py``, headless, 0.5-1.5 s think time, on 127.0.0.1;
  home, image pages, 400 px thumbnails, the JSON list, similar images, text search (JSON and
  HTML). Each level runs ``--duration`` seconds, users starting over the first 5 s; the
  figures are over every request after those 5 s (requests still running at the end are
  waited for and counted).

Target: at 25 users, no errors and p99 <= 100 ms for every request except text search.
Every process started here is stopped at the end, on an error, on Ctrl-C and on SIGTERM.
Each level also says how busy the cores were (server, worker, locust, this script, the rest
of the machine): on a shared machine, read the latencies with that line.

With a kept ``--data-dir``, candidates an earlier run left pending fail as "connection"
(their URLs name that run's fake server, which is gone).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, select

from bench._load_data import build_gallery, fresh_photo
from bench._load_processes import cpu_snapshot, free_port, started, tail, wait_ready
from bench._load_report import Level, print_level, print_target
from bench._photos import PHOTOS
from scenery.config import Settings
from scenery.context import Context
from scenery.models import Candidate, Image, ImageStatus, IngestRun
from tests.fakes.reddit import FakeReddit
from tests.fakes.reddit_posts import make_post

# Where ONNX exports are cached: passed on, so a child process does not export the model again.
ONNX_CACHE = "SCENERY_ONNX_DIR"

BIN = Path(sys.executable).parent
LOCUSTFILE = Path(__file__).with_name("_load_locustfile.py")
SUBREDDIT = "EarthPorn"
RAMP_SECONDS = 5  # users start over this long at the beginning of each level
# Settings FakeReddit.settings gives that are about where the worker runs, not the fake.
NOT_FOR_THE_FAKE = {"data_dir", "warm_up", "index_refresh_seconds"}


class Feeder:
    """New posts, each with a fresh photo, at the top of the fake subreddit's listing."""

    def __init__(self, fake: FakeReddit, per_minute: float) -> None:
        self.fake = fake
        self.interval = 60 / per_minute if per_minute > 0 else None
        self.run = f"{int(time.time()):x}"  # post ids new to a kept data dir as well
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._feed, name="feeder", daemon=True)

    def post(self, body: bytes) -> None:
        """Add a post linking to ``body`` (a JPEG) as the newest of the listing."""
        key = f"{self.run}x{self.count:04d}"
        url = self.fake.add_file(f"/img/{key}.jpg", body)
        post = make_post(key, subreddit=SUBREDDIT, url=url, title=f"Load test photo {key}")
        self.fake.posts.setdefault(SUBREDDIT.lower(), []).insert(0, post)
        self.count += 1

    def start(self) -> None:
        if self.interval:
            self._thread.start()

    def _feed(self) -> None:
        while self.interval and not self._stop.wait(self.interval):
            self.post(fresh_photo(int(self.run, 16) + self.count))

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


def worker_env(env: dict[str, str], fake: FakeReddit, root: Path) -> dict[str, str]:
    """The worker's environment: FakeReddit.settings as SCENERY_* variables, a 2 s tick."""
    aimed = fake.settings(root)
    worker = dict(env)
    for key in aimed.model_fields_set - NOT_FOR_THE_FAKE:
        worker[f"SCENERY_{key.upper()}"] = str(getattr(aimed, key))
    worker.update(SCENERY_SCHEDULER_TICK_SECONDS="2", SCENERY_WORKER_SHUTDOWN_SECONDS="5")
    return worker


def ingest_counts(ctx: Context) -> Counter[str]:
    """Finished runs by status, and candidates by state, so far."""
    with ctx.sessions() as session:
        runs = session.execute(
            select(IngestRun.status, func.count())
            .where(IngestRun.finished_at.is_not(None))
            .group_by(IngestRun.status)
        ).all()
        states = session.execute(
            select(Candidate.state, func.count()).group_by(Candidate.state)
        ).all()
    counts: Counter[str] = Counter({f"runs {s}": n for s, n in runs})
    counts.update({f"candidates {s}": n for s, n in states})
    return counts


def targets(ctx: Context, path: Path) -> None:
    """The published ids and hashes the users pick from."""
    with ctx.sessions() as session:
        rows = session.execute(
            select(Image.id, Image.sha256).where(Image.status == ImageStatus.PUBLISHED)
        )
        ids, shas = zip(*rows.all(), strict=True)
    pages = max(1, len(ids) // ctx.settings.page_size)
    path.write_text(json.dumps({"ids": ids, "shas": shas, "pages": pages}))


def warm_up(base: str, image_id: int) -> None:
    """Request every kind of page until both server workers answer them all quickly: searches
    go four at a time, so that each sync worker gets some and loads its model now."""
    failed, settled, deadline = 0, 0, time.monotonic() + 300
    paths = ["/", f"/image/{image_id}", f"/api/images/{image_id}/similar"]
    paths += [f"/api/search?q=warm+up+{n}" for n in range(4)]
    with httpx.Client(base_url=base, timeout=60) as client, ThreadPoolExecutor(4) as pool:

        def timed_get(path: str) -> tuple[int, float]:
            started = time.perf_counter()
            try:
                status = client.get(path).status_code
            except httpx.HTTPError:
                status = 0
            return status, time.perf_counter() - started

        while settled < 5:
            if time.monotonic() > deadline:
                raise SystemExit("the server did not warm up in 5 minutes (see server.log)")
            answers = list(pool.map(timed_get, paths))
            if all(status == 200 for status, _ in answers):
                settled = settled + 1 if all(took < 2 for _, took in answers) else 0
            else:
                failed, settled = failed + 1, 0
                time.sleep(1)
    if failed:
        print(f"warm-up: {failed} rounds had errors before the server settled (see server.log)")


def run_level(users: int, args: argparse.Namespace, base: str, root: Path) -> list[Any]:
    """One level of users for ``--duration`` seconds; every request's record."""
    record = root / f"requests-{users}.json"
    record.unlink(missing_ok=True)
    command = [str(BIN / "locust"), "-f", str(LOCUSTFILE), "--headless", "--only-summary"]
    # Users start over RAMP_SECONDS (all at once, they would queue behind each other at the two
    # sync workers: a burst no site sees); the figures leave the ramp out.
    rate = f"{users / RAMP_SECONDS:g}"
    command += ["-u", str(users), "-r", rate, "-t", f"{args.duration}s", "--host", base]
    # Requests still running when the level ends are waited for (up to past gunicorn's 30 s
    # worker timeout), so the slowest ones, and their errors, are counted too.
    command += ["--stop-timeout", "40", "--loglevel", "WARNING"]
    command += ["--targets", str(root / "targets.json"), "--record", str(record)]
    log = root / "locust.log"
    with log.open("ab") as out:
        # A failed request makes locust exit 1; the records say what failed.
        subprocess.run(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            timeout=args.duration + 150,
            check=False,
        )
    if not record.exists():
        raise SystemExit(f"locust wrote no records:\n{tail(log)}")
    records = json.loads(record.read_text())
    first = min((r[1] for r in records), default=0.0)
    return [r for r in records if r[1] >= first + RAMP_SECONDS]


def scan_logs(root: Path) -> None:
    """What went wrong in the server's and the worker's logs (the warm-up included)."""
    for name in ("server.log", "worker.log"):
        if not (root / name).exists():
            continue
        text = (root / name).read_text(errors="replace")
        counts = {
            "tracebacks": text.count("Traceback"),
            "'database is locked'": text.count("database is locked"),
            "5xx answers": len(re.findall(r'" 5\d\d ', text)),
            "gunicorn worker timeouts": text.count("WORKER TIMEOUT"),
        }
        print(f"{name}: " + ", ".join(f"{n} {what}" for what, n in counts.items()))
        if counts["tracebacks"]:
            print("  the first one ends:\n    " + "\n    ".join(_first_traceback(text)[-6:]))


def _first_traceback(text: str) -> list[str]:
    lines = text[text.index("Traceback") :].splitlines()
    for n, line in enumerate(lines[1:], 1):
        if not line.startswith(" "):  # the exception itself
            return lines[: n + 1]
    return lines


def prepare(ctx: Context, env: dict[str, str], count: int) -> None:
    """Build the gallery unless the data dir has one, then rebuild the vector index."""
    with ctx.sessions() as session:
        have = session.scalar(select(func.count()).select_from(Image))
    if have:
        print(f"reusing the gallery in {ctx.settings.root} ({have:,} images)")
    else:
        started_at = time.perf_counter()
        build_gallery(ctx, count)
        print(f"built {count:,} gallery images in {time.perf_counter() - started_at:.0f} s")
    subprocess.run([BIN / "scenery", "reindex"], env=env, check=True)


def follow(env: dict[str, str]) -> None:
    add = [BIN / "scenery", "subscriptions", "add", SUBREDDIT, "--every", "0", "--limit", "100"]
    done = subprocess.run(add, env=env, capture_output=True, text=True, check=False)
    if done.returncode and "already followed" not in done.stderr:
        raise SystemExit(f"could not follow r/{SUBREDDIT}: {done.stderr}")


def run(args: argparse.Namespace, stack: ExitStack) -> list[Level]:
    """Set everything up (stopped by ``stack``), run the levels, report each."""
    if args.data_dir:
        root = args.data_dir.resolve()
        root.mkdir(parents=True, exist_ok=True)
    else:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="scenery-load-")))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCENERY_") or k == ONNX_CACHE}
    env.update(SCENERY_DATA_DIR=str(root), SCENERY_CLIP_MODEL="tiny-test")
    ctx = Context(Settings(data_dir=root, clip_model="tiny-test"))
    stack.callback(ctx.close)
    ctx.migrate()
    prepare(ctx, env, args.images)
    targets(ctx, root / "targets.json")
    for log in ("locust.log", "worker.log"):  # a kept data dir's, from an earlier run
        (root / log).unlink(missing_ok=True)
    feeder = start_fake(stack, args.feed_per_minute)
    if not args.no_ingest:
        follow(env)

    base = f"http://127.0.0.1:{args.port or free_port()}"
    serve = [str(BIN / "scenery"), "serve", "--prod", "--workers", "2"]
    serve += ["--port", base.rsplit(":", 1)[1]]
    server = stack.enter_context(started(serve, env, root / "server.log"))
    wait_ready(base, server, root / "server.log")
    worker = None
    if not args.no_ingest:
        command = [str(BIN / "scenery"), "worker"]
        env_for_worker = worker_env(env, feeder.fake, root)
        worker = stack.enter_context(started(command, env_for_worker, root / "worker.log"))
    warm_up(base, json.loads((root / "targets.json").read_text())["ids"][0])
    posted_first = feeder.count
    if worker is not None:
        feeder.start()
    levels = []
    for users in args.users:
        before, cpu_before, wall = ingest_counts(ctx), cpu_snapshot(server, worker), time.time()
        records = run_level(users, args, base, root)
        cpu = cpu_snapshot(server, worker)
        cpu.subtract(cpu_before)
        wall = time.time() - wall
        cores = {name: seconds / wall for name, seconds in cpu.items()}
        levels.append(Level(users, records, ingest_counts(ctx) - before, cores))
        print_level(levels[-1])
    feeder.stop()
    if worker is not None:
        before = f"{posted_first} before the first level"
        print(f"\nposts on the fake subreddit: {feeder.count} ({before})")
    scan_logs(root)
    return levels


def start_fake(stack: ExitStack, per_minute: float) -> Feeder:
    """Serve the fake Reddit with 30 posts: the 15 sample photos (the gallery's sources, so
    rejected as duplicates) and 15 fresh photos (published); more come once the feeder starts."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the fake's request lines
    fake = FakeReddit()
    stack.enter_context(fake.running())
    feeder = Feeder(fake, per_minute)
    stack.callback(feeder.stop)
    for photo in sorted(PHOTOS.glob("*.jpg")):
        feeder.post(photo.read_bytes())
    for n in range(15):
        feeder.post(fresh_photo(int(feeder.run, 16) + n))
    return feeder


def _interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=10_000, help="gallery size")
    parser.add_argument(
        "--users",
        type=lambda s: [int(n) for n in s.split(",")],
        default=[10, 25, 50],
        help="comma-separated user counts, one level each",
    )
    parser.add_argument("--duration", type=int, default=45, help="seconds per level")
    parser.add_argument("--feed-per-minute", type=float, default=30, help="new posts a minute")
    parser.add_argument(
        "--no-ingest", action="store_true", help="no worker: the web server alone (a baseline)"
    )
    parser.add_argument("--port", type=int, default=0, help="default: a free port")
    parser.add_argument("--data-dir", type=Path, help="keep the gallery and logs here (reused)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 100 images, 3 users, 10 s")
    args = parser.parse_args()
    if args.quick:
        args.images, args.users, args.duration = 100, [3], 10
    signal.signal(signal.SIGTERM, _interrupt)  # stop the children on SIGTERM too
    try:
        with ExitStack() as stack:
            levels = run(args, stack)
    except KeyboardInterrupt:
        raise SystemExit("interrupted: every process started here was stopped") from None
    print_target(levels, users=25, limit_ms=100)


if __name__ == "__main__":
    main()
