"""Workers as real processes: the embedded schedule behind `scenery serve --with-worker`, a
SIGTERM mid-ingest, a kill -9 mid-ingest with the lease taken over by the other worker, and
several machines simulated on one (PostgreSQL, Redis, two gunicorn servers, two workers)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from scenery import schedule
from scenery.config import Settings
from scenery.context import Context
from scenery.db import transaction
from scenery.embed import OpenClipEmbedder
from scenery.models import Candidate, CandidateState, ImageStatus, IngestRun, Subscription, utcnow
from scenery.models import Image as ImageRow
from scenery.models import Post as PostRow
from scenery.models import Worker as WorkerRow
from tests.fakes.reddit import FakeReddit
from tests.fakes.reddit_posts import make_post
from tests.helpers import resized_copy, subscribe
from tests.live import BIN, Processes, free_port, settings_env, wait_for, wait_ready

pytestmark = pytest.mark.slow
REDIS_URL = "redis://127.0.0.1:6379/0"


def fast(fake: FakeReddit, tmp_path: Path, **overrides: Any) -> Settings:
    """Settings for worker processes: quick ticks, heartbeats and polling, no NudeNet."""
    values: dict[str, Any] = {
        "scheduler_tick_seconds": 0.5,
        "worker_heartbeat_seconds": 1,
        "queue_poll_seconds": 0.2,
        "index_refresh_seconds": 1,
        "nsfw_nudenet": False,
        "warm_up": True,  # servers load the model at start, not on the first search
    }
    values.update(overrides)
    return fake.settings(tmp_path, **values)


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    processes = Processes(tmp_path / "logs")
    yield processes
    processes.stop_all()


def published(ctx: Context) -> set[int]:
    with ctx.sessions() as session:
        return set(
            session.scalars(select(ImageRow.id).where(ImageRow.status == ImageStatus.PUBLISHED))
        )


def runs(ctx: Context, subscription_id: int | None = None) -> list[IngestRun]:
    query = select(IngestRun).order_by(IngestRun.id)
    if subscription_id is not None:
        query = query.where(IngestRun.subscription_id == subscription_id)
    with ctx.sessions() as session:
        return list(session.scalars(query))


def subscription(ctx: Context, sid: int) -> Subscription:
    with ctx.sessions() as session:
        row = session.get(Subscription, sid)
        assert row is not None
        return row


def worker_row(ctx: Context, process: subprocess.Popen[bytes]) -> WorkerRow | None:
    with ctx.sessions() as session:
        return session.scalars(select(WorkerRow).where(WorkerRow.pid == process.pid)).first()


def search_ids(base: str) -> set[int]:
    """Every image a server's text search returns (k covers the whole gallery)."""
    response = httpx.get(f"{base}/api/search", params={"q": "a landscape", "k": 100}, timeout=120)
    response.raise_for_status()
    return {item["id"] for item in response.json()["results"]}


def cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [str(BIN / "scenery"), *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def post_photos(fake: FakeReddit, photos: list[Path], count: int, slow_from: int) -> None:
    """Post ``count`` photos to r/EarthPorn; serve those from ``slow_from`` on correctly but
    slowly (1 s each), so a signal lands mid-run."""
    fake.add_posts(
        "EarthPorn",
        [make_post(f"p{n}", url=fake.add_photo(f"/img/p{n}.jpg", photos[n])) for n in range(count)],
    )
    for n in range(slow_from, count):
        fake.fail(
            f"/img/p{n}.jpg",
            status=200,
            delay=1.0,
            times=None,
            body=photos[n].read_bytes(),
            content_type="image/jpeg",
        )


def test_serve_with_worker_runs_the_schedule_until_paused(
    tmp_path: Path, photos: list[Path], tiny_embedder: OpenClipEmbedder, procs: Processes
) -> None:
    fake = FakeReddit()
    with fake.running():
        posts = [
            make_post(f"p{n}", url=fake.add_photo(f"/img/p{n}.jpg", photos[n])) for n in range(5)
        ]
        fake.add_posts("EarthPorn", posts[:3])
        settings = fast(fake, tmp_path, scheduler_tick_seconds=1)  # SQLite, SQLite queue
        ctx = Context(settings, embedder=tiny_embedder)
        ctx.migrate()
        env = settings_env(settings)
        assert "due now" in cli(env, "subscriptions", "add", "EarthPorn", "--every", "0")
        port = free_port()
        server = procs.start("serve", env, "serve", "--with-worker", "--port", str(port))
        base = f"http://127.0.0.1:{port}"
        wait_ready(base, server, procs.log_dir / "serve.log", timeout=120)

        def ok_runs() -> int:
            return sum(run.status == "ok" for run in runs(ctx))

        wait_for(lambda: ok_runs() >= 1, 120, "the first scheduled ingest")
        assert len(published(ctx)) == 3, procs.logs()
        wait_for(lambda: search_ids(base) == published(ctx), 10, "the server's search")

        fake.add_posts("EarthPorn", posts[3:])  # new posts: a later tick's run brings them in
        wait_for(lambda: len(published(ctx)) == 5, 60, "the new posts to be published")
        # the run records its end just after it commits what it published
        wait_for(lambda: ok_runs() >= 2, 30, "the second run to be recorded as ok")
        wait_for(lambda: search_ids(base) == published(ctx), 10, "the server's search")

        cli(env, "subscriptions", "pause", "1")
        wait_for(lambda: subscription(ctx, 1).lease_token is None, 60, "the last run to end")
        count = len(runs(ctx))
        time.sleep(4)  # four ticks
        assert len(runs(ctx)) == count
        status = cli(env, "status")
        assert "paused" in status and "scheduler" in status

        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) is not None
        with ctx.sessions() as session:  # the embedded worker stopped with the server
            workers = session.scalars(select(WorkerRow)).all()
        assert len(workers) == 1 and workers[0].stopped_at is not None, procs.logs()
        ctx.close()


def test_sigterm_mid_ingest_hands_the_run_back_and_the_next_worker_finishes_it(
    tmp_path: Path, photos: list[Path], tiny_embedder: OpenClipEmbedder, procs: Processes
) -> None:
    fake = FakeReddit()
    with fake.running():
        post_photos(fake, photos, 8, slow_from=2)
        settings = fast(
            fake, tmp_path, clip_batch_size=2, download_concurrency=1, worker_shutdown_seconds=20
        )
        ctx = Context(settings, embedder=tiny_embedder)
        ctx.migrate()
        env = settings_env(settings)
        sid = subscribe(ctx, "EarthPorn")
        first = procs.start("worker-1", env, "worker")
        wait_for(lambda: len(published(ctx)) >= 2, 120, "the ingest to get going")
        assert first.poll() is None
        stopping = time.monotonic()
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=30) == 0, procs.logs()
        assert time.monotonic() - stopping < 20
        (run,) = runs(ctx, sid)
        assert run.status == "interrupted", procs.logs()
        sub = subscription(ctx, sid)
        assert sub.lease_token is None and sub.next_run_at is not None
        assert sub.next_run_at.replace(tzinfo=None) <= utcnow().replace(tzinfo=None)  # due
        row = worker_row(ctx, first)
        assert row is not None and row.stopped_at is not None
        done = len(published(ctx))
        assert done < 8

        fake.faults.clear()
        procs.start("worker-2", env, "worker")
        wait_for(
            lambda: len(runs(ctx, sid)) == 2 and runs(ctx, sid)[-1].status == "ok",
            120,
            "the next worker's run",
        )
        assert len(published(ctx)) == 8
        with ctx.sessions() as session:
            states = session.scalars(select(Candidate.state)).all()
        assert sorted(states) == [CandidateState.PUBLISHED] * 8
        assert "agree" in cli(env, "doctor")
        ctx.close()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_killed_worker_loses_its_lease_and_the_other_worker_redoes_the_run(
    tmp_path: Path,
    db_url: str,
    photos: list[Path],
    tiny_embedder: OpenClipEmbedder,
    procs: Processes,
) -> None:
    fake = FakeReddit()
    with fake.running():
        post_photos(fake, photos, 8, slow_from=2)
        settings = fast(
            fake,
            tmp_path,
            database_url=db_url,
            queue_url=REDIS_URL,
            queue_name=f"test-{uuid.uuid4().hex[:8]}",
            lease_seconds=3,
            clip_batch_size=2,
            download_concurrency=1,
        )
        ctx = Context(settings, embedder=tiny_embedder)
        ctx.migrate()
        env = settings_env(settings)
        try:
            doomed = procs.start("worker-a", env, "worker", "--no-scheduler", "--threads", "1")
            wait_for(lambda: worker_row(ctx, doomed) is not None, 90, "worker a to start")
            sid = subscribe(ctx, "EarthPorn")
            with transaction(ctx.sessions) as session:  # only "run now" may start it
                session.execute(
                    update(Subscription).values(next_run_at=utcnow().replace(year=2100))
                )
            assert schedule.run_now(ctx.sessions, ctx.queue, sid, "test", settings.lease_seconds)
            doomed_id = worker_row(ctx, doomed).id  # type: ignore[union-attr]
            wait_for(lambda: subscription(ctx, sid).lease_owner == doomed_id, 60, "a to start it")
            survivor = procs.start("worker-b", env, "worker")
            wait_for(lambda: len(published(ctx)) >= 2, 120, "the ingest to get going")
            wait_for(lambda: worker_row(ctx, survivor) is not None, 90, "worker b to start")
            os.kill(doomed.pid, signal.SIGKILL)
            doomed.wait()
            killed_at = len(published(ctx))
            assert killed_at < 8
            fake.faults.clear()
            wait_for(
                lambda: [r.status for r in runs(ctx, sid)] == ["lost", "ok"],
                120,
                "the other worker to redo the run",
            )
            survivor_id = worker_row(ctx, survivor).id  # type: ignore[union-attr]
            assert runs(ctx, sid)[-1].worker == survivor_id
            assert len(published(ctx)) == 8
            with ctx.sessions() as session:
                states = session.scalars(select(Candidate.state)).all()
                shas = session.scalars(select(ImageRow.sha256)).all()
            assert sorted(states) == [CandidateState.PUBLISHED] * 8
            assert len(shas) == len(set(shas)) == 8
            assert "agree" in cli(env, "doctor")
            # SIGTERM of the surviving (idle) worker: a clean exit.
            survivor.send_signal(signal.SIGTERM)
            assert survivor.wait(timeout=30) == 0
        finally:
            ctx.queue.flush()
            ctx.close()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_several_machines_share_the_schedule_and_never_publish_a_photo_twice(
    tmp_path: Path,
    db_url: str,
    photos: list[Path],
    tiny_embedder: OpenClipEmbedder,
    procs: Processes,
) -> None:
    fake = FakeReddit()
    with fake.running():
        urls = {n: fake.add_photo(f"/img/p{n}.jpg", photos[n]) for n in range(6)}
        copies = {
            n: fake.add_file(f"/img/r{n}.jpg", resized_copy(photos[n]), "image/jpeg")
            for n in (1, 2)
        }
        feeds = {  # post id -> (subreddit, url, which photo it shows)
            "e0": ("EarthPorn", urls[0], 0),
            "e1": ("EarthPorn", urls[1], 1),
            "e2": ("EarthPorn", urls[2], 2),
            "l0": ("LandscapePhotography", urls[0], 0),  # a crosspost: the same file
            "l3": ("LandscapePhotography", urls[3], 3),
            "m1": ("MostBeautiful", copies[1], 1),  # the same photo, resized
            "m4": ("MostBeautiful", urls[4], 4),
            "x3": ("ExposurePorn", urls[3], 3),
            "x2": ("ExposurePorn", copies[2], 2),
            "x5": ("ExposurePorn", urls[5], 5),
        }
        for post_id, (sub, url, _photo) in feeds.items():
            fake.add_posts(sub, [make_post(post_id, subreddit=sub, url=url)])
        settings = fast(
            fake,
            tmp_path,
            database_url=db_url,
            queue_url=REDIS_URL,
            queue_name=f"test-{uuid.uuid4().hex[:8]}",
            min_pixels=100_000,
        )
        ctx = Context(settings, embedder=tiny_embedder)
        ctx.migrate()
        env = settings_env(settings)
        try:
            ids = [subscribe(ctx, name) for name in sorted({f[0] for f in feeds.values()})]
            servers = []
            for n in range(2):
                port = free_port()
                server = procs.start(
                    f"web-{n}", env, "serve", "--prod", "--workers", "1", "--port", str(port)
                )
                servers.append((f"http://127.0.0.1:{port}", server, n))
            procs.start("worker-a", env, "worker")
            procs.start("worker-b", env, "worker", "--no-scheduler")
            for base, server, n in servers:
                wait_ready(base, server, procs.log_dir / f"web-{n}.log", timeout=120)

            def runs_per_subscription() -> list[list[str]]:
                return [[r.status for r in runs(ctx, sid)] for sid in ids]

            wait_for(
                lambda: all(r == ["ok"] for r in runs_per_subscription()),
                180,
                "each subscription's first run",
            )
            time.sleep(2)  # four more ticks: nothing is due, nothing may run
            assert runs_per_subscription() == [["ok"]] * 4, procs.logs()

            with transaction(ctx.sessions) as session:  # a second due moment for all four
                session.execute(update(Subscription).values(next_run_at=utcnow()))
            wait_for(
                lambda: all(r == ["ok", "ok"] for r in runs_per_subscription()),
                120,
                "each subscription's second run",
            )
            time.sleep(2)
            assert runs_per_subscription() == [["ok", "ok"]] * 4

            with ctx.sessions() as session:
                rows = session.execute(
                    select(PostRow.fullname, Candidate.state)
                    .join(Candidate.post)
                    .where(Candidate.state == CandidateState.PUBLISHED)
                ).all()
                pending = session.scalars(
                    select(Candidate.id).where(Candidate.state == CandidateState.PENDING)
                ).all()
            shown = sorted(feeds[name.removeprefix("t3_")][2] for name, _ in rows)
            assert shown == [0, 1, 2, 3, 4, 5], rows  # every photo once, no copy twice
            assert pending == []
            expected = published(ctx)
            assert len(expected) == 6
            for base, _server, _n in servers:
                wait_for(
                    lambda base=base: search_ids(base) == expected,
                    10,
                    f"{base} to find every published image",
                )
        finally:
            ctx.queue.flush()
            ctx.close()
