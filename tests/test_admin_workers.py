"""The admin pages' view of the workers: who is alive, the task queue, failures, the train
button, and "run now" handing subscriptions to a worker instead of running them in the web
process."""

from __future__ import annotations

import re
import threading
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, update

from ingest.jobs import ingest_handlers
from ingest.summary import IngestSummary, summary_json
from scenery import schedule
from scenery.config import Settings
from scenery.curation import gallery_training, watermark
from scenery.curation.artifacts import kind_dir, latest_meta
from scenery.db import transaction
from scenery.errors import CurationError, QueueUnavailable
from scenery.models import IngestRun, Subscription, Worker, utcnow
from scenery.queue import Job, TaskQueue
from scenery.worker import Worker as WorkerProcess
from scenery.workers import beat, record_failure, register
from tests.admin_world import AdminWorld, hold_listings, page_token, post_before, stat
from tests.helpers import subscribe

# Page rendering and the queue do not depend on the database: those tests run on SQLite only;
# the ones whose queries differ by dialect (claims, run history) run on both.
SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
LIVE, SILENT = "alpha-host:101:aaaaaa", "beta-host:202:bbbbbb"


def add_worker(
    world: AdminWorld, wid: str, *, scheduler: bool = False, task: str | None = None
) -> None:
    with transaction(world.ctx.sessions) as session:
        register(session, wid, scheduler=scheduler, threads=2)
    with transaction(world.ctx.sessions) as session:
        beat(session, wid, task)


def last_seen(world: AdminWorld, wid: str, ago: timedelta) -> None:
    with transaction(world.ctx.sessions) as session:
        session.execute(update(Worker).where(Worker.id == wid).values(last_seen_at=utcnow() - ago))


def runs_of(world: AdminWorld, sid: int) -> list[IngestRun]:
    with world.ctx.sessions() as session:
        return list(
            session.scalars(
                select(IngestRun).where(IngestRun.subscription_id == sid).order_by(IngestRun.id)
            )
        )


def waiting(world: AdminWorld) -> list[tuple[str, tuple[Any, ...]]]:
    """The queue's waiting tasks, read without taking them."""
    return [(task.name, tuple(task.args)) for task in world.ctx.queue.huey.pending()]


def work_off_one_task(world: AdminWorld) -> None:
    """Take the next waiting task and run it here as a worker's thread would (its handlers,
    its signals), without starting a consumer."""
    WorkerProcess(world.ctx, threads=1, scheduler=False, extra=ingest_handlers)
    huey = world.ctx.queue.huey
    task = huey.dequeue()
    assert task is not None, "no task waiting"
    huey.execute(task)


def article(page: str, sid: int) -> str:
    return page.split(f'data-id="{sid}"')[1].split("</article>")[0]


def text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


# -- the dashboard's workers panel ---------------------------------------------------------------


def test_dashboard_lists_live_workers_and_hides_one_silent_for_ten_minutes(
    world: AdminWorld, admin: FlaskClient
) -> None:
    add_worker(world, LIVE, scheduler=True, task="ingest_subscription(1, 'a<b>')")
    add_worker(world, SILENT)
    last_seen(world, SILENT, timedelta(minutes=10))
    page = admin.get("/admin/").get_data(as_text=True)
    table = page.split('id="workers"')[1].split("</table>")[0]
    row = table.split(f'data-worker="{LIVE}"')[1].split("</tr>")[0]
    cells = re.findall(r"<td>(.*?)</td>", row, re.S)
    assert cells[:4] == ["alpha-host", "101", "yes", "2"]
    assert "ingest_subscription(1, &#39;a&lt;b&gt;&#39;)" in row  # the task in hand, escaped
    assert "beta-host" not in page and SILENT not in page
    assert stat(page, "stat-workers") == "1"
    assert 'id="no-workers"' not in page


@SQLITE_ONLY
def test_dashboard_warns_when_no_worker_is_alive(world: AdminWorld, admin: FlaskClient) -> None:
    add_worker(world, SILENT)
    last_seen(world, SILENT, timedelta(minutes=10))
    page = admin.get("/admin/").get_data(as_text=True)
    warning = text(page.split('id="no-workers"')[1].split("</p>")[0])
    assert "nothing runs scheduled ingests" in warning
    assert "Start scenery worker , or make run" in warning
    assert "No worker seen in the last 5 minutes." in page
    assert stat(page, "stat-workers") == "0"


@SQLITE_ONLY
def test_dashboard_shows_task_failures_escaped(world: AdminWorld, admin: FlaskClient) -> None:
    hostile = "ValueError: bad title <script>alert('x')</script>"
    with transaction(world.ctx.sessions) as session:
        record_failure(session, Job.INGEST.value, "(3, 'tok')", LIVE, hostile)
    page = admin.get("/admin/").get_data(as_text=True)
    failures = page.split('id="task-failures"')[1].split("</table>")[0]
    assert "ValueError: bad title &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in failures
    assert "<script>alert" not in page
    assert "ingest_subscription" in failures and LIVE in failures


@SQLITE_ONLY
def test_dashboard_counts_the_tasks_waiting(world: AdminWorld, admin: FlaskClient) -> None:
    queue = world.ctx.queue
    queue.flush()
    assert stat(admin.get("/admin/").get_data(as_text=True), "stat-tasks") == "0"
    queue.enqueue(Job.REFIT)
    queue.enqueue(Job.REFIT)
    assert stat(admin.get("/admin/").get_data(as_text=True), "stat-tasks") == "2"


@SQLITE_ONLY
def test_dashboard_renders_when_the_queue_is_unreachable(
    world: AdminWorld, admin: FlaskClient
) -> None:
    nowhere = Settings(data_dir=world.ctx.settings.data_dir, queue_url="redis://127.0.0.1:1/0")
    world.ctx.__dict__["queue"] = TaskQueue(nowhere)  # a Redis that refuses connections
    response = admin.get("/admin/")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "queue unreachable: the task queue is unreachable" in page
    assert "Connection refused" in page
    assert stat(page, "stat-tasks") == "&ndash;"


# -- training is a worker's job ------------------------------------------------------------------


@SQLITE_ONLY
def test_train_button_enqueues_one_training_and_trains_nothing_here(
    world: AdminWorld, admin: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Any training in this process lands in a stand-in that holds until released.
    arrived, release = threading.Event(), threading.Event()
    trainings: list[object] = []

    def hold(*args: object, **_kwargs: object) -> None:
        trainings.append(args)
        arrived.set()
        release.wait(60)
        raise CurationError("the stand-in trainer trains nothing")

    monkeypatch.setattr(watermark, "train_watermark", hold)
    monkeypatch.setattr(gallery_training, "train_watermark", hold)
    monkeypatch.setattr(gallery_training, "train_gallery_watermark", hold)
    world.ctx.queue.flush()
    token = page_token(admin, "/admin/")
    form = {"csrf_token": token}
    response = post_before(admin, "/admin/train/watermark", form, arrived, release)
    assert response.status_code == 302
    assert waiting(world) == [(Job.TRAIN_WATERMARK.value, ())]
    assert trainings == [] and latest_meta(world.ctx.settings, "watermark") is None
    assert not kind_dir(world.ctx.settings, "watermark").exists()
    page = admin.get(response.headers["Location"]).get_data(as_text=True)
    assert "Queued: a worker trains the detector." in page
    # The stand-in is where a training goes: the worker that takes the task reaches it, once.
    work_off_one_task(world)
    assert trainings == [(world.ctx,)] and waiting(world) == []


@SQLITE_ONLY
def test_train_button_says_so_when_the_queue_is_unreachable(
    world: AdminWorld, admin: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(*_args: object) -> None:
        raise QueueUnavailable("the task queue is unreachable: Connection refused")

    monkeypatch.setattr(world.ctx.queue, "enqueue", down)
    token = page_token(admin, "/admin/")
    response = admin.post(
        "/admin/train/watermark", data={"csrf_token": token}, follow_redirects=True
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and response.request.path == "/admin/"
    assert "Not queued: the task queue is unreachable: Connection refused." in page
    assert "Queued: a worker trains" not in page


@SQLITE_ONLY
def test_train_button_without_a_csrf_token_is_refused(
    world: AdminWorld, admin: FlaskClient
) -> None:
    before = world.ctx.queue.pending()
    assert admin.post("/admin/train/watermark").status_code == 400
    assert admin.post("/admin/train/watermark", data={"csrf_token": "forged"}).status_code == 400
    assert world.ctx.queue.pending() == before


# -- subscriptions: run now hands the run to a worker --------------------------------------------


def test_run_now_queues_a_claimed_run_once_and_runs_nothing_here(
    world: AdminWorld, admin: FlaskClient
) -> None:
    sid = subscribe(world.ctx, "Fresh")
    world.fake.add_posts("Fresh", [])
    world.ctx.queue.flush()
    token = page_token(admin, "/admin/subscriptions")
    # Reddit holds the listing: a request that ran the ingest itself would wait on it.
    listing = hold_listings(world.fake, "Fresh")
    assert listing.release is not None
    run_path, form = f"/admin/subscriptions/{sid}/run", {"csrf_token": token}
    response = post_before(admin, run_path, form, listing.arrived, listing.release)
    assert response.status_code == 302
    [run] = runs_of(world, sid)
    assert (run.status, run.owner, run.started_at) == ("queued", "web:owner", None)
    assert waiting(world) == [(Job.INGEST.value, (sid, run.token))]
    page = admin.get("/admin/subscriptions").get_data(as_text=True)
    assert "Queued: a worker runs it now" in page
    assert "No worker is running: the run waits until one starts." in page
    card = text(article(page, sid))
    assert "Claimed by web:owner, waiting for a worker" in card
    assert '<meta http-equiv="refresh"' in page  # refreshes while the run is pending
    # nothing ran here: Reddit was not asked and the subscription has no last run
    assert not [r for r in world.fake.listing_requests() if "/r/Fresh/" in r.path]
    with world.ctx.sessions() as session:
        assert session.get(Subscription, sid).last_run_at is None

    again = admin.post(
        f"/admin/subscriptions/{sid}/run", data={"csrf_token": token}, follow_redirects=True
    )
    assert "already under way" in again.get_data(as_text=True)
    assert len(waiting(world)) == 1 and len(runs_of(world, sid)) == 1

    # The worker that takes the task is the one that asks Reddit, once, and ends the run.
    work_off_one_task(world)
    assert listing.arrived.is_set()
    assert [r.path for r in world.fake.listing_requests() if "/r/Fresh/" in r.path] == [
        "/r/Fresh/new.json"
    ]
    [run] = runs_of(world, sid)
    assert run.status == "ok" and run.owner == "web:owner" and run.worker is not None


def test_subscriptions_page_shows_the_worker_running_it_and_when_each_runs_next(
    world: AdminWorld, admin: FlaskClient
) -> None:
    add_worker(world, LIVE, scheduler=True)
    running, later, paused = (
        subscribe(world.ctx, "Fresh"),
        subscribe(world.ctx, "Later"),
        subscribe(world.ctx, "Sleepy", paused=True),
    )
    due = subscribe(world.ctx, "Due")
    with transaction(world.ctx.sessions) as session:
        session.execute(
            update(Subscription)
            .where(Subscription.id == later)
            .values(next_run_at=utcnow() + timedelta(minutes=30, seconds=20))
        )
    token = page_token(admin, "/admin/subscriptions")
    admin.post(f"/admin/subscriptions/{running}/run", data={"csrf_token": token})
    [run] = runs_of(world, running)
    assert schedule.start(world.ctx.sessions, run.token, LIVE, lease=300) is not None
    page = admin.get("/admin/subscriptions").get_data(as_text=True)
    card = text(article(page, running))
    assert "Running now on alpha-host:101, started" in card
    assert '<td class="status-running">running</td>' in article(page, running)
    assert "Next run: in 30 min" in text(article(page, later))
    assert "Next run: paused" in text(article(page, paused))
    assert "Next run: due now" in text(article(page, due))
    assert 'id="no-workers"' not in page


def test_subscription_history_lists_its_last_runs_with_their_counts(
    world: AdminWorld, admin: FlaskClient
) -> None:
    sid = subscribe(world.ctx, "Fresh")
    summary = IngestSummary(posts_seen=9, published=2, queued=3, rejected=Counter(too_small=4))
    for n in range(7):
        claim = schedule.run_now(world.ctx.sessions, world.ctx.queue, sid, "web:owner", 300)
        assert claim is not None
        schedule.start(world.ctx.sessions, claim.token, LIVE, lease=300)
        if n == 6:
            error = "every listing failed: <HTTP 503>"
            schedule.finish(world.ctx.sessions, claim.token, "failed", error, None)
        else:
            schedule.finish(world.ctx.sessions, claim.token, "ok", None, summary_json(summary))
    page = admin.get("/admin/subscriptions").get_data(as_text=True)
    table = article(page, sid).split('<table class="log runs">')[1].split("</table>")[0]
    rows = re.findall(r'<tr data-run="(\d+)">(.*?)</tr>', table, re.S)
    assert len(rows) == 5  # the newest five of seven
    ids = [int(run_id) for run_id, _ in rows]
    assert ids == sorted(ids, reverse=True) == [r.id for r in runs_of(world, sid)][::-1][:5]
    newest, older = rows[0][1], rows[1][1]
    assert '<td class="status-failed">failed</td>' in newest
    assert "every listing failed: &lt;HTTP 503&gt;" in newest
    assert '<td class="status-ok">ok</td>' in older
    counts = re.findall(r'<td class="(published|queued|rejected)">(\d+)</td>', older)
    assert counts == [("published", "2"), ("queued", "3"), ("rejected", "4")]


@SQLITE_ONLY
def test_interval_accepts_zero_for_every_tick_and_up_to_four_weeks(
    world: AdminWorld, admin: FlaskClient
) -> None:
    token = page_token(admin, "/admin/subscriptions")
    form = {
        "new-subreddit": "Ticker",
        "new-listing": "new",
        "new-time_filter": "",
        "new-post_limit": "10",
        "new-interval_minutes": "0",
        "csrf_token": token,
    }
    assert admin.post("/admin/subscriptions", data=form).status_code == 302
    with world.ctx.sessions() as session:
        row = session.scalars(select(Subscription)).one()
        assert row.interval_minutes == 0
    page = admin.get("/admin/subscriptions").get_data(as_text=True)
    assert "every scheduler tick" in article(page, row.id)
    assert "Every (minutes, 0 = every scheduler tick)" in page
    edit = {f"s{row.id}-{k[4:]}": v for k, v in form.items() if k.startswith("new-")}
    edit["csrf_token"] = token
    edit[f"s{row.id}-interval_minutes"] = str(60 * 24 * 28)
    assert admin.post(f"/admin/subscriptions/{row.id}", data=edit).status_code == 302
    edit[f"s{row.id}-interval_minutes"] = str(60 * 24 * 28 + 1)
    assert admin.post(f"/admin/subscriptions/{row.id}", data=edit).status_code == 400
    edit[f"s{row.id}-interval_minutes"] = "-1"
    assert admin.post(f"/admin/subscriptions/{row.id}", data=edit).status_code == 400
    with world.ctx.sessions() as session:
        assert session.get(Subscription, row.id).interval_minutes == 60 * 24 * 28


def test_lease_text_tells_queued_running_stale_and_expired_apart() -> None:
    from web.admin.subscriptions import row_state

    now = utcnow()
    live = Worker(id=LIVE, host="alpha-host", pid=101)
    workers = {LIVE: live}

    def state(**values: Any) -> str:
        row = Subscription(
            subreddit="Fresh", lease_token="t", lease_expires_at=now + timedelta(minutes=4)
        )
        for name, value in values.items():
            setattr(row, name, value)
        lease = row_state(row, workers, now).lease
        assert lease is not None
        return lease

    started = now - timedelta(minutes=2)
    assert state(lease_owner=LIVE) == "Claimed by alpha-host:101, waiting for a worker"
    assert state(lease_owner=LIVE, running_since=started) == (
        "Running now on alpha-host:101, started 2 min ago"
    )
    assert state(lease_owner="cli:box:9", running_since=started).startswith(
        "Running now from the command line (cli:box:9)"
    )
    stale = state(lease_owner="gone:1:x", running_since=started)
    assert "has not been seen for 5 minutes" in stale and "in 4 min" in stale
    expired = {"lease_owner": "web:owner", "lease_expires_at": now - timedelta(minutes=3)}
    assert state(**expired).endswith("ran out 3 min ago: the next scheduler tick runs it again")
    assert "when resumed or run by hand" in state(paused=True, **expired)
