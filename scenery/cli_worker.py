"""``scenery worker``, ``scenery status`` and ``scenery subscriptions``: the schedule from the
terminal. The CLI is the one place that wires the ingest job into a worker."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from scenery.cli_support import context, domain_errors
from scenery.db import transaction
from scenery.models import as_utc, utcnow

LISTINGS = click.Choice(["new", "hot", "top", "rising"])
TIMES = click.Choice(["hour", "day", "week", "month", "year", "all"])


@click.command()
@click.option(
    "--threads",
    type=click.IntRange(1, 64),
    default=None,
    help="Tasks run at once (default: SCENERY_WORKER_THREADS, 2).",
)
@click.option(
    "--no-scheduler",
    is_flag=True,
    help="Only run tasks: another worker of this deployment runs the scheduler.",
)
@click.pass_obj
@domain_errors
def worker(obj: dict[str, Any], threads: int | None, no_scheduler: bool) -> None:
    """Run tasks from the queue (ingests, housekeeping) until SIGTERM or Ctrl-C."""
    from ingest.jobs import ingest_handlers
    from scenery.worker import Worker

    if logging.getLogger().level > logging.INFO:
        logging.getLogger().setLevel(logging.INFO)  # a worker's log is its output
    ctx = context(obj)
    process = Worker(
        ctx,
        threads=threads or ctx.settings.worker_threads,
        scheduler=not no_scheduler,
        extra=ingest_handlers,
    )
    process.run()


@click.command()
@click.pass_obj
@domain_errors
def status(obj: dict[str, Any]) -> None:
    """Show workers, the queue, subscriptions and recent task failures."""
    from scenery.subscriptions import list_subscriptions
    from scenery.workers import alive, last_failures

    ctx = context(obj)
    out = Console()
    with ctx.sessions() as session:
        workers = alive(session)
        subs = list_subscriptions(session)
        failures = last_failures(session)
    table = Table(
        "worker",
        "scheduler",
        "started",
        "last seen",
        "task in hand",
        title="workers seen in the last 5 minutes",
    )
    for w in workers:
        table.add_row(
            w.id,
            "yes" if w.scheduler else "",
            _when(w.started_at),
            _when(w.last_seen_at),
            w.task or "idle",
        )
    out.print(table)
    try:
        out.print(f"queue: {ctx.queue.pending()} tasks waiting")
    except Exception as exc:  # the queue's server may be down; say so and go on
        out.print(f"queue: unreachable ({type(exc).__name__}: {exc})")
    _subscription_table(out, subs)
    table = Table("when", "task", "worker", "error", title="last task failures")
    for failure in failures:
        table.add_row(_when(failure.at), failure.task, failure.worker or "", failure.error)
    out.print(table)


def _subscription_table(out: Console, subs: list[Any]) -> None:
    table = Table(
        "id", "feed", "every", "next run", "last run", "status", "running on", title="subscriptions"
    )
    for sub in subs:
        feed = f"r/{sub.subreddit} {sub.listing}" + (
            f" ({sub.time_filter})" if sub.time_filter else ""
        )
        summary = sub.last_summary or {}
        last = _when(sub.last_run_at)
        if summary:
            last += f" (published {summary.get('published', 0)}, queued {summary.get('queued', 0)})"
        state = "paused" if sub.paused else (sub.last_status or "")
        if sub.last_error:
            state += f": {sub.last_error}"
        table.add_row(
            str(sub.id),
            feed,
            f"{sub.interval_minutes} min",
            _when(sub.next_run_at),
            last,
            state,
            sub.lease_owner or "",
        )
    out.print(table)


def _when(moment: datetime | None) -> str:
    moment = as_utc(moment)
    if moment is None:
        return "-"
    seconds = (moment - utcnow()).total_seconds()
    span = abs(seconds)
    text = (
        f"{span:.0f} s"
        if span < 120
        else f"{span / 60:.0f} min"
        if span < 7200
        else f"{span / 3600:.1f} h"
    )
    return f"in {text}" if seconds > 0 else f"{text} ago"


@click.group()
def subscriptions() -> None:
    """Follow subreddits: workers ingest them on their schedule."""


@subscriptions.command("add")
@click.argument("subreddit")
@click.option("--listing", type=LISTINGS, default="new", show_default=True)
@click.option("--time", "time_filter", type=TIMES, default=None, help="For --listing top.")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option(
    "--every",
    type=click.IntRange(0, 60 * 24 * 28),
    default=60,
    show_default=True,
    help="Minutes between runs (0: at every scheduler tick).",
)
@click.pass_obj
@domain_errors
def add(
    obj: dict[str, Any],
    subreddit: str,
    listing: str,
    time_filter: str | None,
    limit: int,
    every: int,
) -> None:
    """Follow a subreddit; it is due at once."""
    from sqlalchemy.exc import IntegrityError

    from scenery.subscriptions import save_subscription

    ctx = context(obj)
    try:
        with transaction(ctx.sessions) as session:
            row = save_subscription(
                session,
                None,
                subreddit=subreddit,
                listing=listing,
                time_filter=time_filter,
                post_limit=limit,
                interval_minutes=every,
                paused=False,
            )
            sid, name = row.id, row.subreddit
    except IntegrityError as exc:
        raise click.ClickException(f"r/{subreddit} {listing} is already followed") from exc
    click.echo(f"subscription {sid}: r/{name} {listing}, every {every} min, due now")


@subscriptions.command("list")
@click.pass_obj
@domain_errors
def list_(obj: dict[str, Any]) -> None:
    """List subscriptions with their schedule and last run."""
    from scenery.subscriptions import list_subscriptions

    ctx = context(obj)
    with ctx.sessions() as session:
        subs = list_subscriptions(session)
    _subscription_table(Console(), subs)


def _pause_command(name: str, paused: bool) -> click.Command:
    @click.command(name, help=f"{name.capitalize()} a subscription.")
    @click.argument("subscription_id", type=int)
    @click.pass_obj
    @domain_errors
    def command(obj: dict[str, Any], subscription_id: int) -> None:
        from scenery.subscriptions import set_paused

        ctx = context(obj)
        with transaction(ctx.sessions) as session:
            row = set_paused(session, subscription_id, paused)
            sub = row.subreddit
        click.echo(f"r/{sub} {'paused' if paused else 'resumed'}")

    return command


subscriptions.add_command(_pause_command("pause", True))
subscriptions.add_command(_pause_command("resume", False))


@subscriptions.command("remove")
@click.argument("subscription_id", type=int)
@click.pass_obj
@domain_errors
def remove(obj: dict[str, Any], subscription_id: int) -> None:
    """Stop following a subreddit (what it brought in stays)."""
    from scenery.subscriptions import remove_subscription

    ctx = context(obj)
    with transaction(ctx.sessions) as session:
        name = remove_subscription(session, subscription_id)
    click.echo(f"r/{name} removed")


COMMANDS = (worker, status, subscriptions)
