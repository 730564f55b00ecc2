"""A WSGI app that takes SLOW_BOOT_SECONDS (default 5) to load, as the gallery does while it
loads its model: tests/test_slow_clients.py serves it with scenery.serving's worker and a
gunicorn timeout shorter than that."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any

time.sleep(float(os.environ.get("SLOW_BOOT_SECONDS", "5")))


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"loaded"]
