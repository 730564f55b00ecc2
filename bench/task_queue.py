"""The task queue and the scheduler: how soon a worker starts a task, and what a tick costs.

Run: ``python bench/task_queue.py [--busy 200 --gap-ms 20 --idle 10 --idle-gap 8]
[--subscriptions 1000 --repeats 3] [--redis-url redis://127.0.0.1:6379/0] [--pg-url URL]
[--quick]``. ``--quick``: 10 busy tasks, 2 after 1.5 s idle, 50 subscriptions, one repeat
(a smoke run: too short an idle gap to show the longest poll).

1. Enqueue-to-start latency, SQLite queue and Redis queue. A real huey consumer runs in its own
   process (``bench/_queue_consumer.py``: ``build_huey`` storage, ``scenery.worker``'s consumer
   options, SCENERY_WORKER_THREADS threads, SCENERY_QUEUE_POLL_SECONDS longest poll); its one
   task writes down when it started. "busy": tasks back to back, ``--gap-ms`` apart. "idle":
   each task after ``--idle-gap`` seconds of nothing, when the SQLite consumer has backed off
   to its longest poll (huey's poll starts at 0.1 s and grows 15% per empty poll: it reaches
   1 s after about 6.5 s idle, so a 3 s gap would not show the worst case). Enqueue is the
   producer's own call (what a web request pays). About 3 minutes with the defaults.
2. The scheduler's claim cost: ``scenery.schedule.tick`` claiming ``--subscriptions`` due
   subscriptions (one compare-and-set each, one transaction: on SQLite it holds the write lock
   throughout), in a fresh SQLite file and in a private PostgreSQL schema, enqueueing into a
   throwaway SQLite queue; and an idle tick, where nothing is due. Medians of ``--repeats``;
   the claim cost per subscription is each tick's time less that tick's enqueueing.

Named task_queue.py, not queue.py: a bench/queue.py would shadow the standard library's
``queue`` module in every ``python bench/<script>.py`` (the script's folder comes first on
sys.path), breaking anything there that uses thread pools.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, text, update

from bench._queue_consumer import stamp_task
from scenery.config import Settings
from scenery.context import Context
from scenery.db import transaction
from scenery.models import IngestRun, Subscription, utcnow
from scenery.queue import Job, TaskQueue, build_huey
from scenery.schedule import tick

REPO = Path(__file__).resolve().parents[1]
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# -- 1. enqueue-to-start latency --------------------------------------------------------------


@dataclass
class Phase:
    """One backend and phase: the producer's enqueue calls and the consumer's start delays."""

    queue: str
    phase: str
    enqueue_ms: list[float]
    start_ms: list[float]


@contextmanager
def consumer(env: dict[str, str], results: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run the benchmark's consumer in its own process; SIGTERM it (then kill) afterwards."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "bench._queue_consumer", str(results)],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def read_results(results: Path) -> dict[int, float]:
    if not results.exists():
        return {}
    found = {}
    for line in results.read_text().splitlines():
        n, seconds = line.split()
        found[int(n)] = float(seconds) * 1000
    return found


def wait_for(
    results: Path, wanted: set[int], process: subprocess.Popen[bytes], log: Path
) -> dict[int, float]:
    """Wait (at most a minute) until the consumer has started every task in ``wanted``."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = read_results(results)
        if wanted <= found.keys():
            return found
        if process.poll() is not None:
            raise SystemExit(f"the consumer exited ({process.returncode}):\n{log.read_text()}")
        time.sleep(0.05)
    missing = sorted(wanted - found.keys())
    raise SystemExit(f"{len(missing)} tasks never started:\n{log.read_text()}")


def latency(name: str, queue_url: str | None, args: argparse.Namespace) -> list[Phase]:
    """Both phases against one queue backend."""
    with tempfile.TemporaryDirectory(prefix="scenery-queue-bench-") as tmp:
        root = Path(tmp)
        queue_name = f"bench-{uuid.uuid4().hex[:12]}"
        settings = Settings(data_dir=root, queue_url=queue_url, queue_name=queue_name)
        env = {k: v for k, v in os.environ.items() if k != "SCENERY_QUEUE_URL"}
        env.update(SCENERY_DATA_DIR=tmp, SCENERY_QUEUE_NAME=queue_name)
        if queue_url:
            env["SCENERY_QUEUE_URL"] = queue_url
        huey = build_huey(settings)
        stamp = stamp_task(huey, None)
        results, log = root / "results.txt", root / "consumer.log"
        try:
            with consumer(env, results, log) as process:
                stamp(-1, time.time())  # the consumer is up once this one has run
                wait_for(results, {-1}, process, log)
                busy = _send(stamp, range(args.busy), args.gap_ms / 1000)
                found = wait_for(results, set(range(args.busy)), process, log)
                phases = [_phase(name, f"busy ({args.gap_ms:g} ms gaps)", busy, found)]
                ids = range(args.busy, args.busy + args.idle)
                idle = _send(stamp, ids, args.idle_gap, wait_first=True)
                found = wait_for(results, set(ids), process, log)
                phases.append(_phase(name, f"after {args.idle_gap:g} s idle", idle, found))
        finally:
            huey.flush()
            if queue_url:  # nothing of this run may stay behind in a shared Redis
                conn = huey.storage.conn
                left = conn.keys(f"*{queue_name}*")
                if left:
                    conn.delete(*left)
            huey.storage.close()
        return phases


def _send(stamp: Any, ids: range, gap: float, *, wait_first: bool = False) -> dict[int, float]:
    """Enqueue one task per id, ``gap`` seconds apart; return each enqueue call's ms."""
    spent = {}
    for n in ids:
        if wait_first:
            time.sleep(gap)
        started = time.perf_counter()
        stamp(n, time.time())
        spent[n] = (time.perf_counter() - started) * 1000
        if not wait_first:
            time.sleep(max(0.0, gap - spent[n] / 1000))
    return spent


def _phase(queue: str, phase: str, enqueue: dict[int, float], found: dict[int, float]) -> Phase:
    return Phase(queue, phase, list(enqueue.values()), [found[n] for n in enqueue])


# -- 2. the scheduler's claim cost ------------------------------------------------------------


class TimedQueue(TaskQueue):
    """A throwaway queue that adds up the time its enqueue calls take."""

    enqueue_seconds = 0.0

    def enqueue(self, job: Job, *args: Any) -> None:
        started = time.perf_counter()
        super().enqueue(job, *args)
        self.enqueue_seconds += time.perf_counter() - started


@dataclass
class ClaimCost:
    database: str
    claim_s: list[float]  # the whole tick
    enqueue_s: list[float]  # of which enqueueing the won claims
    idle_ms: list[float]


@contextmanager
def database(kind: str, root: Path, pg_url: str) -> Iterator[str]:
    """A fresh database: a SQLite file, or a private PostgreSQL schema dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{root / 'scenery.db'}"
        return
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        sep = "&" if "?" in pg_url else "?"
        yield f"{pg_url}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def claim_cost(kind: str, args: argparse.Namespace) -> ClaimCost:
    with tempfile.TemporaryDirectory(prefix="scenery-claim-bench-") as tmp:
        root = Path(tmp)
        with database(kind, root, args.pg_url) as url:
            settings = Settings(
                data_dir=root / "data", database_url=url, queue_url=None, queue_name="claims"
            )
            ctx = Context(settings)
            try:
                ctx.migrate()
                return _claim_rounds(kind, ctx, settings, args)
            finally:
                ctx.close()


def _claim_rounds(
    kind: str, ctx: Context, settings: Settings, args: argparse.Namespace
) -> ClaimCost:
    n = args.subscriptions
    with transaction(ctx.sessions) as session:
        session.add_all(
            Subscription(subreddit=f"bench_{i:05d}", listing="new", interval_minutes=60)
            for i in range(n)
        )
    queue = TimedQueue(settings)
    cost = ClaimCost(kind, [], [], [])
    try:
        for _ in range(args.repeats):
            _schedule(ctx, due=True)
            queue.enqueue_seconds = 0.0
            started = time.perf_counter()
            claims = tick(ctx.sessions, queue, "bench:tick", settings.lease_seconds)
            cost.claim_s.append(time.perf_counter() - started)
            cost.enqueue_s.append(queue.enqueue_seconds)
            if len(claims) != n:
                raise SystemExit(f"{kind}: a tick claimed {len(claims)} of {n} due subscriptions")
            queue.flush()
            _schedule(ctx, due=False)  # the runs are over, the next ones in an hour
            for _ in range(5):
                started = time.perf_counter()
                if tick(ctx.sessions, queue, "bench:tick", settings.lease_seconds):
                    raise SystemExit(f"{kind}: an idle tick claimed something")
                cost.idle_ms.append((time.perf_counter() - started) * 1000)
    finally:
        queue.flush()
        queue.huey.storage.close()
    return cost


def _schedule(ctx: Context, *, due: bool) -> None:
    """Finish every open run, free every lease, and make every subscription due (or not)."""
    now = utcnow()
    with transaction(ctx.sessions) as session:
        session.execute(
            update(IngestRun)
            .where(IngestRun.finished_at.is_(None))
            .values(status="ok", started_at=now, finished_at=now)
        )
        session.execute(
            update(Subscription).values(
                lease_token=None,
                lease_owner=None,
                lease_expires_at=None,
                last_run_at=now,
                next_run_at=now + timedelta(minutes=-1 if due else 60),
            )
        )


# -- output -----------------------------------------------------------------------------------


def print_latency(phases: list[Phase], settings: Settings) -> None:
    print(
        f"\nenqueue-to-start latency, ms (consumer in its own process, "
        f"{settings.worker_threads} threads, longest SQLite poll {settings.queue_poll_seconds:g} s)"
    )
    print(
        f"{'queue':7} {'phase':22} {'n':>4} {'enqueue p50':>11} {'p99':>7} "
        f"{'start p50':>10} {'p90':>7} {'p99':>7} {'max':>7}"
    )
    for p in phases:
        s = p.start_ms
        print(
            f"{p.queue:7} {p.phase:22} {len(s):4d} {statistics.median(p.enqueue_ms):11.2f} "
            f"{percentile(p.enqueue_ms, 0.99):7.2f} {statistics.median(s):10.1f} "
            f"{percentile(s, 0.9):7.1f} {percentile(s, 0.99):7.1f} {max(s):7.1f}"
        )


def print_claims(costs: list[ClaimCost], n: int, repeats: int) -> None:
    print(
        f"\nscheduler tick: claiming {n:,} due subscriptions (one transaction), "
        f"median of {repeats}; idle tick: nothing due, median of {repeats * 5}"
    )
    print(
        f"{'database':10} {'tick s':>8} {'min':>7} {'max':>7} {'enqueue s':>10} "
        f"{'claim ms each':>14} {'idle tick ms':>13}"
    )
    for c in costs:
        # The rest of each tick once its own enqueueing is taken out, then the median of those
        # (a difference of two medians could pair the enqueueing of one tick with another).
        claims = [t - e for t, e in zip(c.claim_s, c.enqueue_s, strict=True)]
        print(
            f"{c.database:10} {statistics.median(c.claim_s):8.3f} {min(c.claim_s):7.3f} "
            f"{max(c.claim_s):7.3f} {statistics.median(c.enqueue_s):10.3f} "
            f"{statistics.median(claims) / n * 1000:14.3f} {statistics.median(c.idle_ms):13.2f}"
        )
    print("(enqueue s: of the tick, the time spent enqueueing into the throwaway SQLite queue,")
    print(" after the claims' transaction committed; claim ms each: the rest of the same tick,")
    print(" per subscription, median over the ticks)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--busy", type=int, default=200, help="back-to-back tasks")
    parser.add_argument("--gap-ms", type=float, default=20, help="between back-to-back tasks")
    parser.add_argument("--idle", type=int, default=10, help="tasks after an idle gap")
    parser.add_argument("--idle-gap", type=float, default=8, help="seconds of idle before each")
    parser.add_argument("--subscriptions", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--redis-url", default=REDIS_URL, help="empty: skip Redis")
    parser.add_argument("--pg-url", default=PG_URL, help="empty: skip PostgreSQL")
    parser.add_argument("--quick", action="store_true", help="smoke run: a few tasks and ticks")
    args = parser.parse_args()
    if args.quick:
        args.busy, args.idle, args.idle_gap, args.subscriptions, args.repeats = 10, 2, 1.5, 50, 1
    phases = latency("sqlite", None, args)
    if args.redis_url:
        phases += latency("redis", args.redis_url, args)
    costs = [claim_cost("sqlite", args)]
    if args.pg_url:
        costs.append(claim_cost("postgresql", args))
    print_latency(phases, Settings())
    print_claims(costs, args.subscriptions, args.repeats)


if __name__ == "__main__":
    main()
