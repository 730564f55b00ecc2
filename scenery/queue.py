"""The task queue (huey): where web servers, the CLI and the scheduler say "look at this now",
and where workers pick it up.

The database is the truth; a task only carries ids. huey delivers at most once (a task in
flight when its worker is killed is gone), so every task is idempotent and anything that must
not be lost is recovered from the database (leases, pending candidates), never from the queue.

Every process builds the same ``TaskQueue`` from its settings. Only a worker gives it handlers:
the core names the jobs, and the CLI, which wires everything, says what each one does (an
ingest lives in ``ingest/``, which the core does not import).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Mapping
from typing import Any

from huey import Huey, RedisHuey, SqliteHuey, crontab

from scenery.config import Settings
from scenery.errors import ConfigError, QueueUnavailable, SceneryError

log = logging.getLogger(__name__)


class Job(enum.StrEnum):
    """What a worker can be asked to do; arguments are ids and plain values only."""

    INGEST = "ingest_subscription"  # (subscription id, lease token)
    REFIT = "refit_if_due"  # ()
    TRAIN_WATERMARK = "train_watermark"  # ()
    RETENTION = "purge_rejected_files"  # ()
    SAVE_INDEX = "save_index"  # ()
    RECOVER_LEASES = "recover_leases"  # ()
    BACKUP = "backup_if_due"  # ()


# Housekeeping the scheduling worker enqueues by itself (huey's periodic tasks, checked once
# a minute by the consumer that runs without --no-scheduler).
PERIODIC: dict[Job, Callable[..., bool]] = {
    Job.RECOVER_LEASES: crontab(minute="*"),
    Job.SAVE_INDEX: crontab(minute="*/5"),
    Job.REFIT: crontab(minute="*/15"),
    Job.RETENTION: crontab(minute="23"),
    # Hourly: it writes a backup only when the newest is SCENERY_BACKUP_INTERVAL_HOURS old.
    Job.BACKUP: crontab(minute="41"),
}

Handler = Callable[..., Any]


def build_huey(settings: Settings) -> Huey:
    """huey on SQLite in the data dir (no ``queue_url``) or on Redis."""
    url, name = settings.queue_url, settings.queue_name
    if not url:
        settings.root.mkdir(parents=True, exist_ok=True)
        return SqliteHuey(name, filename=str(settings.root / "queue.db"), results=False, utc=True)
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisHuey(name, url=url, results=False, utc=True, blocking=True)
    raise ConfigError(f"SCENERY_QUEUE_URL must be a redis:// URL or unset, not {url!r}")


class TaskQueue:
    """One deployment's queue: enqueue jobs by name; a worker registers what they do."""

    def __init__(self, settings: Settings, huey: Huey | None = None) -> None:
        self.huey = huey or build_huey(settings)
        self.handlers: dict[Job, Handler] = {}
        self._tasks = {job: self._register(job) for job in Job}

    def _register(self, job: Job) -> Any:
        def run(*args: Any) -> None:
            handler = self.handlers.get(job)
            if handler is None:
                raise SceneryError(f"this process has no handler for {job}")
            handler(*args)

        run.__name__ = run.__qualname__ = job.value
        if job in PERIODIC:
            return self.huey.periodic_task(PERIODIC[job], name=job.value)(run)
        return self.huey.task(name=job.value)(run)

    def serve(self, handlers: Mapping[Job, Handler]) -> None:
        """Make this process able to run the jobs (a worker does this before consuming)."""
        self.handlers.update(handlers)

    def enqueue(self, job: Job, *args: Any) -> None:
        """Ask a worker to run ``job`` soon."""
        try:
            self._tasks[job](*args)
        except Exception as exc:  # Redis down, the queue file unwritable...
            if self.huey.immediate:
                raise
            raise QueueUnavailable(f"the task queue is unreachable: {exc}") from exc
        log.info("enqueued %s%s", job, args)

    def pending(self) -> int:
        """Tasks waiting for a worker."""
        try:
            return int(self.huey.pending_count())
        except Exception as exc:
            raise QueueUnavailable(f"the task queue is unreachable: {exc}") from exc

    def flush(self) -> None:
        """Drop every waiting task."""
        self.huey.flush()
