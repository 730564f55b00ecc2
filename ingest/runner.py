"""Wires one ingest run: its lease (renewed while it works), its own download folder, the
clients, the pipeline, and how it ended.

A run is claimed first (``scenery.schedule``: by the scheduler, "run now" or the command line)
and started here under its lease token. Two runs of different feeds may work at once; the same
subscription never runs twice at a time.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ingest.pipeline import Ingest
from ingest.reddit import RedditClient
from ingest.resolve import Resolver
from ingest.summary import IngestSummary, summary_json
from scenery import schedule
from scenery.context import Context
from scenery.curation.fitting import refit_if_due
from scenery.errors import SceneryError
from scenery.fetch import Fetcher
from scenery.housekeeping import sweep_downloads
from scenery.retention import purge_rejected_files

log = logging.getLogger(__name__)
Progress = Callable[[str, int], None]


@dataclass(frozen=True)
class Feed:
    subreddits: tuple[str, ...]
    sort: str = "new"
    time_filter: str | None = None
    limit: int = 100


def _run_pipeline(
    ctx: Context,
    feed: Feed,
    token: str,
    *,
    dry_run: bool = False,
    on_progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    housekeeping: bool = True,
) -> IngestSummary:
    """Run the pipeline once in the run's own download folder. ``housekeeping`` (the command
    line) also refits the gallery model if due and drops long-rejected files; workers do
    those as scheduled tasks."""
    downloads = ctx.settings.downloads_dir / token
    shutil.rmtree(downloads, ignore_errors=True)
    try:
        with (
            RedditClient(ctx.settings) as reddit,
            Resolver(ctx.settings) as resolver,
            Fetcher(ctx.settings) as fetcher,
        ):
            pipeline = Ingest(
                ctx,
                reddit,
                resolver,
                fetcher,
                downloads=downloads,
                on_progress=on_progress,
                should_stop=should_stop,
            )
            if housekeeping and not dry_run and ctx.settings.gallery_fit:
                pipeline.summary.refitted = refit_if_due(ctx) is not None
            summary = pipeline.run(
                feed.subreddits, feed.sort, feed.time_filter, feed.limit, dry_run
            )
        if housekeeping and not dry_run:
            days = ctx.settings.rejected_file_retention_days
            summary.purged = purge_rejected_files(ctx, days)
        return summary
    finally:
        shutil.rmtree(downloads, ignore_errors=True)


class Renewer:
    """Renews a run's lease on a thread; if the lease is lost, asks the run to stop."""

    def __init__(self, ctx: Context, claim: schedule.Claim) -> None:
        self.ctx, self.claim = ctx, claim
        self.lost = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="lease", daemon=True)

    def _loop(self) -> None:
        lease = self.ctx.settings.lease_seconds
        while not self._done.wait(lease / 3):
            try:
                if not schedule.renew(self.ctx.sessions, self.claim, lease):
                    log.warning("run %s lost its lease: stopping it", self.claim.token)
                    self.lost.set()
                    return
            except Exception:  # the database is away; the lease may still be renewed later
                log.exception("renewing the lease of run %s failed", self.claim.token)

    def __enter__(self) -> Renewer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=10)


def run_claimed(
    ctx: Context,
    claim: schedule.Claim,
    feed: Feed,
    worker: str,
    *,
    dry_run: bool = False,
    on_progress: Progress | None = None,
    stop: threading.Event | None = None,
    housekeeping: bool = False,
) -> IngestSummary | None:
    """Start a claimed run, work under its lease, and record how it ended; None if the claim
    was superseded before it started. A run stopped by ``stop`` (the worker is shutting down)
    hands its subscription back, due at once; one that lost its lease leaves it to its new
    owner. Errors of the run itself are recorded and re-raised."""
    settings = ctx.settings
    if schedule.start(ctx.sessions, claim.token, worker, settings.lease_seconds) is None:
        log.info("run %s was superseded before it started", claim.token)
        return None
    sweep_downloads(ctx)  # what runs killed before this one left behind
    with Renewer(ctx, claim) as renewer:

        def should_stop() -> bool:
            return renewer.lost.is_set() or (stop is not None and stop.is_set())

        try:
            summary = _run_pipeline(
                ctx,
                feed,
                claim.token,
                dry_run=dry_run,
                on_progress=on_progress,
                should_stop=should_stop,
                housekeeping=housekeeping,
            )
        except BaseException as exc:
            interrupted = not isinstance(exc, Exception)  # KeyboardInterrupt, SystemExit
            status = "interrupted" if interrupted else "failed"
            error: str | None = (
                str(exc) if isinstance(exc, SceneryError) else f"{type(exc).__name__}: {exc}"
            )
            schedule.finish(
                ctx.sessions, claim.token, status, error, None, reschedule=not interrupted
            )
            raise
    if renewer.lost.is_set():
        status, error = "lost", schedule.LOST
    elif summary.interrupted:
        status, error = "interrupted", "stopped by its worker's shutdown; due again at once"
    elif summary.nothing_fetched:
        status, error = "failed", "; ".join(summary.errors)
    else:
        status, error = "ok", None
    schedule.finish(
        ctx.sessions,
        claim.token,
        status,
        error,
        summary_json(summary),
        reschedule=status != "interrupted",
    )
    return summary


def run_ingest(
    ctx: Context,
    subreddits: Sequence[str],
    sort: str = "new",
    time_filter: str | None = None,
    limit: int = 100,
    dry_run: bool = False,
    on_progress: Progress | None = None,
) -> IngestSummary:
    """``scenery ingest``: claim the feeds (the leases of the subscriptions that follow them;
    refused while one of them runs elsewhere) and run, with the refit and retention
    housekeeping a worker would otherwise do on its schedule."""
    owner = cli_owner()
    feed = Feed(tuple(subreddits), sort, time_filter, limit)
    claim = schedule.claim_feeds(
        ctx.sessions, feed.subreddits, sort, time_filter, owner, ctx.settings.lease_seconds
    )
    summary = run_claimed(
        ctx, claim, feed, owner, dry_run=dry_run, on_progress=on_progress, housekeeping=True
    )
    assert summary is not None  # nobody else knows this claim's token
    return summary


def cli_owner() -> str:
    """Who holds a command-line run's lease."""
    return f"cli:{socket.gethostname()}:{os.getpid()}"
