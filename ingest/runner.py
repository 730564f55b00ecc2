"""Wires one ingest run: a lock on the data dir, the clients, the pipeline, the cleanup."""

from __future__ import annotations

import fcntl
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from ingest.fetch import Fetcher
from ingest.pipeline import Ingest
from ingest.reddit import RedditClient
from ingest.resolve import Resolver
from ingest.summary import IngestSummary
from scenery.context import Context
from scenery.errors import SceneryError
from scenery.retention import purge_rejected_files


@contextmanager
def ingest_lock(ctx: Context) -> Iterator[None]:
    """Hold the data dir's ingest lock; a second concurrent run is refused."""
    path = ctx.settings.root / "ingest.lock"
    with path.open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise SceneryError("another ingest is running on this data dir") from exc
        yield


def run_ingest(
    ctx: Context,
    subreddits: Sequence[str],
    sort: str = "new",
    time_filter: str | None = None,
    limit: int = 100,
    dry_run: bool = False,
    on_progress: Callable[[str, int], None] | None = None,
) -> IngestSummary:
    """Run the pipeline once under the lock, starting from a clean download dir."""
    with ingest_lock(ctx):
        # Leftovers of a killed run: only this process may be downloading now.
        shutil.rmtree(ctx.settings.root / "tmp" / "downloads", ignore_errors=True)
        with (
            RedditClient(ctx.settings) as reddit,
            Resolver(ctx.settings) as resolver,
            Fetcher(ctx.settings) as fetcher,
        ):
            pipeline = Ingest(ctx, reddit, resolver, fetcher, on_progress=on_progress)
            summary = pipeline.run(subreddits, sort, time_filter, limit, dry_run)
        if not dry_run:
            days = ctx.settings.rejected_file_retention_days
            summary.purged = purge_rejected_files(ctx, days)
        return summary
