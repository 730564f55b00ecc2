"""The production server: gunicorn's configuration, ``gunicorn -c python:scenery.serving
'web.wsgi:app'`` (what ``scenery serve --prod`` runs).

Slow clients must not hold a worker that others need. gunicorn's default sync worker serves
one connection at a time, reading its request line, headers and body itself: two clients that
send half a request stop a two-worker site until gunicorn kills both workers. Its threaded
worker only moves the limit to the number of threads (a thread reads the request too). Here
each worker is gunicorn's gevent worker: every connection is a greenlet that waits on its
socket without holding anything, so a worker serves whoever is ready while any number (up to
``worker_connections``) of slow clients trickle. On top of gunicorn's own deadline for a
request's line and headers (``keepalive``), a connection that sends and reads nothing for
``SCENERY_CLIENT_IDLE_SECONDS`` is closed, so vanished clients do not pile up.

The model and the index are loaded before a worker accepts its first connection (``web.wsgi``
does it while gunicorn loads the app; a native thread keeps the worker's heartbeat meanwhile),
so no request waits for them and gunicorn never mistakes a long first load for a hung worker.

This module is read by gunicorn's master before it forks: it imports nothing that opens
database drivers (psycopg picks its way of waiting when first imported, and only picks the
cooperative one after gevent has patched the worker).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from gevent import monkey
from gunicorn.workers.base_async import AsyncWorker
from gunicorn.workers.ggevent import GeventWorker

from scenery.config import load_settings

# How long a worker may take to load its app (the model, the index) while a native thread
# keeps its heartbeat; past this, gunicorn's usual timeout applies and a stuck load is killed.
BOOT_SECONDS = 600


class SceneryGeventWorker(GeventWorker):  # type: ignore[misc]  # gunicorn ships no type hints
    """gunicorn's gevent worker, with an idle deadline on every connection and a heartbeat
    while the app loads."""

    idle_seconds: float = 60.0

    def init_process(self) -> None:
        self.idle_seconds = load_settings().client_idle_seconds
        super().init_process()

    def load_wsgi(self) -> None:
        # Time the load from its start: gunicorn 27 would not time a worker at all before its
        # first heartbeat, so a load stuck for good would never be killed.
        self.tmp.notify()
        with heartbeat(self.tmp.notify, every=0.5, at_most=BOOT_SECONDS):
            super().load_wsgi()

    def handle(self, listener: Any, client: socket.socket, addr: Any) -> None:
        # GeventWorker.handle only makes the socket blocking with no timeout; this gives each
        # of its waits (request, body, response) a deadline instead.
        client.settimeout(self.idle_seconds)
        AsyncWorker.handle(self, listener, client, addr)


@contextmanager
def heartbeat(notify: Callable[[], object], every: float, at_most: float) -> Iterator[None]:
    """Call ``notify`` every ``every`` seconds from a native thread while the block runs, for
    at most ``at_most`` seconds (a greenlet would not run while the block keeps the CPU)."""
    start_thread = monkey.get_original("_thread", "start_new_thread")
    sleep = monkey.get_original("time", "sleep")
    running = [True]

    def beat() -> None:
        deadline = time.monotonic() + at_most
        while running[0] and time.monotonic() < deadline:
            notify()
            sleep(every)

    start_thread(beat, ())
    try:
        yield
    finally:
        running[0] = False


# -- gunicorn settings (module-level names that gunicorn reads) -------------------------------

worker_class = SceneryGeventWorker
# Connections one worker holds at once, slow ones included; past this it stops accepting
# until one ends (the listen backlog queues the rest).
worker_connections = 1000
# The time a client has to send a request's line and headers, and how long an idle
# keep-alive connection stays open.
keepalive = 5
