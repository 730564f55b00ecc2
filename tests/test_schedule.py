"""The schedule in the database: claims, leases, renewals, hand-backs and recovery."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from scenery import schedule
from scenery.context import Context
from scenery.db import transaction
from scenery.models import IngestRun, Subscription, as_utc, utcnow
from scenery.queue import Job
from tests.helpers import subscribe

STEP = timedelta(seconds=1)  # the schedule's clock is moved by hand, by this much either side


def sub(ctx: Context, sid: int) -> Subscription:
    with ctx.sessions() as session:
        row = session.get(Subscription, sid)
        assert row is not None
        return row


def runs(ctx: Context, sid: int) -> list[IngestRun]:
    with ctx.sessions() as session:
        return list(
            session.scalars(
                select(IngestRun).where(IngestRun.subscription_id == sid).order_by(IngestRun.id)
            )
        )


def test_new_subscription_is_claimed_once_and_enqueued(ctx: Context) -> None:
    sid = subscribe(ctx)
    paused = subscribe(ctx, "pics", paused=True)
    claims = schedule.tick(ctx.sessions, ctx.queue, "w1", lease=60)
    assert [c.subscription_ids for c in claims] == [(sid,)]
    assert ctx.queue.pending() == 1
    # Still leased: the next ticks claim nothing and enqueue nothing.
    assert schedule.tick(ctx.sessions, ctx.queue, "w2", lease=60) == []
    assert ctx.queue.pending() == 1
    row = sub(ctx, sid)
    assert row.lease_token == claims[0].token and row.lease_owner == "w1"
    assert [r.status for r in runs(ctx, sid)] == ["queued"]
    assert runs(ctx, paused) == []


def test_two_schedulers_ticking_at_once_claim_each_subscription_once(ctx: Context) -> None:
    ids = [subscribe(ctx, f"sub{n}") for n in range(6)]
    won: list[schedule.Claim] = []
    start = threading.Barrier(2)

    def scheduler(owner: str) -> None:
        other = Context(ctx.settings, embedder=ctx.embedder)  # its own engine, like a process
        try:
            start.wait()
            won.extend(schedule.tick(other.sessions, other.queue, owner, lease=60))
        finally:
            other.close()

    threads = [threading.Thread(target=scheduler, args=(f"s{n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(c.subscription_ids[0] for c in won) == ids
    assert ctx.queue.pending() == 6
    assert all(len(runs(ctx, sid)) == 1 for sid in ids)


def test_finished_run_is_due_again_after_its_interval(ctx: Context) -> None:
    sid = subscribe(ctx, every=30)
    claimed = utcnow()
    (claim,) = schedule.tick(ctx.sessions, ctx.queue, "w1", lease=60, now=claimed)
    ended = claimed + timedelta(minutes=7)  # the interval counts from the claim, not the end
    assert schedule.start(ctx.sessions, claim.token, "w1", lease=600, now=claimed) is not None
    schedule.finish(ctx.sessions, claim.token, "ok", None, {"published": 3}, now=ended)
    row = sub(ctx, sid)
    assert as_utc(row.next_run_at) == claimed + timedelta(minutes=30)
    assert as_utc(row.last_run_at) == ended
    assert row.lease_token is None and row.last_status == "ok"
    assert row.last_summary == {"published": 3}
    due = claimed + timedelta(minutes=30)
    assert schedule.tick(ctx.sessions, ctx.queue, "w1", lease=60, now=due - STEP) == []
    assert len(schedule.tick(ctx.sessions, ctx.queue, "w1", lease=60, now=due + STEP)) == 1


def test_interrupted_run_hands_its_subscription_back_due_at_once(ctx: Context) -> None:
    sid = subscribe(ctx, every=30)
    (claim,) = schedule.tick(ctx.sessions, ctx.queue, "w1", lease=60)
    schedule.start(ctx.sessions, claim.token, "w1", lease=60)
    schedule.finish(ctx.sessions, claim.token, "interrupted", "shutdown", None, reschedule=False)
    again = schedule.tick(ctx.sessions, ctx.queue, "w2", lease=60)
    assert [c.subscription_ids for c in again] == [(sid,)]
    assert [r.status for r in runs(ctx, sid)] == ["interrupted", "queued"]


def test_expired_lease_makes_the_subscription_due_and_stops_the_old_run(ctx: Context) -> None:
    sid = subscribe(ctx)
    claimed = utcnow()
    (first,) = schedule.tick(ctx.sessions, ctx.queue, "dead", lease=60, now=claimed)
    assert schedule.start(ctx.sessions, first.token, "dead", lease=60, now=claimed) is not None
    # The worker dies without renewing: its lease holds for its 60 s, and not a moment longer.
    expiry = claimed + timedelta(seconds=60)
    assert schedule.tick(ctx.sessions, ctx.queue, "alive", lease=60, now=expiry - STEP) == []
    later = expiry + STEP
    (second,) = schedule.tick(ctx.sessions, ctx.queue, "alive", lease=60, now=later)
    assert second.token != first.token
    # The first run's worker comes back: it has lost its lease and must stop.
    assert not schedule.renew(ctx.sessions, first, lease=60, now=later)
    assert schedule.renew(ctx.sessions, second, lease=60, now=later)
    # A task for a superseded claim does nothing.
    assert schedule.start(ctx.sessions, first.token, "dead", lease=60, now=later) is None
    statuses = {r.token: r.status for r in runs(ctx, sid)}
    assert statuses == {first.token: "lost", second.token: "queued"}


def test_recovery_closes_expired_runs_and_frees_their_subscriptions(ctx: Context) -> None:
    sid = subscribe(ctx)
    claimed = utcnow()
    (claim,) = schedule.tick(ctx.sessions, ctx.queue, "dead", lease=60, now=claimed)
    schedule.start(ctx.sessions, claim.token, "dead", lease=60, now=claimed)
    expiry = claimed + timedelta(seconds=60)
    assert schedule.recover_expired(ctx.sessions, now=expiry - STEP) == 0  # still live
    assert schedule.recover_expired(ctx.sessions, now=expiry + STEP) == 1
    row = sub(ctx, sid)
    assert row.lease_token is None and row.last_status == "lost"
    assert "stopped renewing" in (row.last_error or "")
    assert [r.status for r in runs(ctx, sid)] == ["lost"]
    again = schedule.tick(ctx.sessions, ctx.queue, "alive", lease=60, now=expiry + STEP)
    assert len(again) == 1


def test_run_now_claims_a_paused_subscription_once(ctx: Context) -> None:
    sid = subscribe(ctx, paused=True)
    with transaction(ctx.sessions) as session:  # not due for an hour
        session.execute(update(Subscription).values(next_run_at=utcnow() + timedelta(hours=1)))
    claim = schedule.run_now(ctx.sessions, ctx.queue, sid, "web:me", lease=60)
    assert claim is not None and ctx.queue.pending() == 1
    assert schedule.run_now(ctx.sessions, ctx.queue, sid, "web:me", lease=60) is None
    assert ctx.queue.pending() == 1
    # Due from now on: if the task is lost, the lease runs out and a tick would run it.
    next_run = as_utc(sub(ctx, sid).next_run_at)
    assert next_run is not None and next_run <= utcnow()


def test_command_line_claim_is_refused_while_a_worker_holds_the_feed(ctx: Context) -> None:
    held = subscribe(ctx, "EarthPorn")
    free = subscribe(ctx, "pics")
    schedule.run_now(ctx.sessions, ctx.queue, held, "w1", lease=60)
    with pytest.raises(schedule.LeaseHeld, match="r/EarthPorn"):
        schedule.claim_feeds(ctx.sessions, ["pics", "earthporn"], "new", None, "cli", lease=60)
    assert sub(ctx, free).lease_token is None  # all or nothing
    claim = schedule.claim_feeds(ctx.sessions, ["PICS", "NoSuchFeed"], "new", None, "cli", 60)
    assert claim.subscription_ids == (free,)
    assert sub(ctx, free).lease_token == claim.token
    # A feed nobody follows still gets a run row (its download folder is kept alive by it).
    with ctx.sessions() as session:
        assert claim.token in schedule.live_tokens(session)


def test_enqueued_ingest_carries_ids_only(ctx: Context) -> None:
    sid = subscribe(ctx)
    (claim,) = schedule.tick(ctx.sessions, ctx.queue, "w1", lease=60)
    seen: list[tuple[object, ...]] = []
    ctx.queue.serve({Job.INGEST: lambda *args: seen.append(args)})
    task = ctx.queue.huey.dequeue()
    ctx.queue.huey.execute(task)
    assert seen == [(sid, claim.token)]


def test_old_finished_runs_are_pruned_and_live_ones_kept(ctx: Context) -> None:
    old, live = subscribe(ctx, "old"), subscribe(ctx, "live")
    claims = {c.subscription_ids[0]: c for c in schedule.tick(ctx.sessions, ctx.queue, "w", 60)}
    schedule.finish(ctx.sessions, claims[old].token, "ok", None, None)
    with transaction(ctx.sessions) as session:
        session.execute(
            update(IngestRun)
            .where(IngestRun.token == claims[old].token)
            .values(finished_at=utcnow() - timedelta(days=31))
        )
    assert schedule.prune_runs(ctx.sessions) == 1
    assert runs(ctx, old) == [] and len(runs(ctx, live)) == 1
