"""A worker process: a huey consumer with this process's context, a heartbeat row, and (in
exactly one worker of a deployment) the scheduler that claims due subscriptions.

SIGTERM stops it gracefully: the stop event is set, running tasks finish or hand their work
back (an ingest stops between batches and leaves its subscription due), and the consumer
waits ``worker_shutdown_seconds`` for them. SIGINT stops at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from huey import signals

from scenery.context import Context
from scenery.db import transaction
from scenery.housekeeping import handlers as core_handlers
from scenery.queue import Handler, Job
from scenery.schedule import tick
from scenery.workers import beat, record_failure, register, stopped, worker_id

log = logging.getLogger(__name__)
DONE = (
    signals.SIGNAL_COMPLETE,
    signals.SIGNAL_ERROR,
    signals.SIGNAL_INTERRUPTED,
    signals.SIGNAL_CANCELED,
    signals.SIGNAL_REVOKED,
    signals.SIGNAL_EXPIRED,
    signals.SIGNAL_TIMEOUT,
    signals.SIGNAL_LOCKED,
)

# What a worker adds to the core's jobs, given the context and the worker (for its stop event
# and id): the CLI passes the ingest job here.
Extra = Callable[[Context, "Worker"], Mapping[Job, Handler]]


class Worker:
    """One worker process's consumer, heartbeat and (optionally) scheduler."""

    def __init__(
        self, ctx: Context, *, threads: int, scheduler: bool, extra: Extra | None = None
    ) -> None:
        self.ctx = ctx
        self.threads = threads
        self.scheduler = scheduler
        self.id = worker_id()
        self.queue = ctx.queue
        settings = ctx.settings
        self.consumer = self.queue.huey.create_consumer(
            workers=threads,
            periodic=scheduler,
            worker_type="thread",
            graceful_signal="TERM",
            shutdown_timeout=settings.worker_shutdown_seconds,
            max_delay=settings.queue_poll_seconds,
            check_worker_health=True,
        )
        self.stopping: threading.Event = self.consumer.stop_flag
        self._in_hand: dict[str, str] = {}
        self._in_hand_lock = threading.Lock()
        handlers = dict(core_handlers(ctx))
        if extra is not None:
            handlers.update(extra(ctx, self))
        self.queue.serve(handlers)
        self.queue.huey.signal()(self._on_signal)

    # -- the process ----------------------------------------------------------------------------

    def run(self) -> None:
        """Consume until a signal stops the consumer."""
        with contextlib.suppress(OSError):  # not permitted: equal priority still works
            os.nice(self.ctx.settings.worker_nice)
        with transaction(self.ctx.sessions) as session:
            register(session, self.id, scheduler=self.scheduler, threads=self.threads)
        log.info(
            "worker %s starting (%d threads, scheduler %s)",
            self.id,
            self.threads,
            "on" if self.scheduler else "off",
        )
        self.ctx.embedder  # noqa: B018 - load the model once, before the first task
        loops = [self._every(self.ctx.settings.worker_heartbeat_seconds, self._beat)]
        if self.scheduler:
            loops.append(self._every(self.ctx.settings.scheduler_tick_seconds, self.tick))
        for loop in loops:
            loop.start()
        try:
            self.consumer.run()
        finally:
            self.stopping.set()
            for loop in loops:
                loop.join(timeout=5)
            with transaction(self.ctx.sessions) as session:
                stopped(session, self.id)
            log.info("worker %s stopped", self.id)

    def tick(self) -> None:
        claims = tick(self.ctx.sessions, self.queue, self.id, self.ctx.settings.lease_seconds)
        if claims:
            log.info("scheduler claimed %d due subscriptions", len(claims))

    def _every(self, seconds: float, action: Callable[[], None]) -> threading.Thread:
        def loop() -> None:
            while not self.stopping.is_set():
                try:
                    action()
                except Exception:  # a database hiccup must not end the loop
                    log.exception("%s failed", action.__name__)
                self.stopping.wait(seconds)

        return threading.Thread(target=loop, name=action.__name__, daemon=True)

    def _beat(self) -> None:
        with self._in_hand_lock:
            task = "; ".join(self._in_hand.values()) or None
        with transaction(self.ctx.sessions) as session:
            beat(session, self.id, task)

    # -- huey's signals: the task in hand, and failures ---------------------------------------

    def _on_signal(self, signal: str, task: Any, *args: Any) -> None:
        if signal == signals.SIGNAL_EXECUTING:
            with self._in_hand_lock:
                self._in_hand[task.id] = describe(task)
            self._beat()
        elif signal in DONE:
            with self._in_hand_lock:
                self._in_hand.pop(task.id, None)
            if signal == signals.SIGNAL_ERROR and args:
                error = args[0]
                text = "".join(traceback.format_exception_only(type(error), error)).strip()
                with transaction(self.ctx.sessions) as session:
                    record_failure(session, task.name, repr(task.args), self.id, text)
            self._beat()


def describe(task: Any) -> str:
    args = ", ".join(repr(a) for a in task.args)
    return f"{task.name}({args})"
