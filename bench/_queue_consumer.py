"""A huey consumer for bench/task_queue.py: one no-op task that writes down when it started.

The queue is ``scenery.queue.build_huey`` of the settings in the environment (the same SQLite
file or Redis queue a worker uses) and the consumer has the options ``scenery.worker`` gives
its own. Run: ``python -m bench._queue_consumer RESULTS_FILE`` (``SCENERY_*`` in the
environment); each task appends "<n> <seconds from enqueue to start>" to RESULTS_FILE.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

from huey import Huey

from scenery.config import Settings, load_settings
from scenery.queue import build_huey

TASK = "bench_stamp"


def stamp_task(huey: Huey, results: Path | None) -> Any:
    """Register the benchmark's task on ``huey``; ``results`` is where the consumer writes."""
    lock = threading.Lock()

    def bench_stamp(n: int, sent: float) -> None:
        started = time.time()  # wall clock: the enqueuing process is another process
        if results is None:
            raise RuntimeError("this process only enqueues")
        with lock, results.open("a") as out:
            out.write(f"{n} {started - sent:.6f}\n")

    # huey names a task by module and name: run as ``-m`` this module is __main__ in the
    # consumer and bench._queue_consumer in the producer, so both get one fixed module name.
    bench_stamp.__module__ = "scenery_bench"
    return huey.task(name=TASK)(bench_stamp)


def consume(settings: Settings, results: Path) -> None:
    """Run a consumer as ``scenery.worker.Worker`` builds it, until SIGTERM or SIGINT."""
    huey = build_huey(settings)
    stamp_task(huey, results)
    consumer = huey.create_consumer(
        workers=settings.worker_threads,
        periodic=False,
        worker_type="thread",
        graceful_signal="TERM",
        shutdown_timeout=5,
        max_delay=settings.queue_poll_seconds,
        check_worker_health=True,
    )
    consumer.run()


if __name__ == "__main__":
    consume(load_settings(), Path(sys.argv[1]))
