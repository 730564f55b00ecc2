"""Helpers for tests that run real processes: a free port, a server, its readiness."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from scenery.config import Settings

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scenery_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCENERY_")}
    env.update(
        SCENERY_DATA_DIR=str(settings.data_dir),
        SCENERY_DATABASE_URL=settings.db_url,
        SCENERY_CLIP_MODEL="tiny-test",
        SCENERY_INDEX_REFRESH_SECONDS="2",
    )
    return env


def scenery(
    settings: Settings, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``scenery`` console script as a separate process."""
    return subprocess.run(
        [str(BIN / "scenery"), *args],
        env=scenery_env(settings),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@contextmanager
def running_server(settings: Settings, *extra: str) -> Iterator[str]:
    """Start ``scenery serve`` on a free port; yield its base URL; stop it afterwards."""
    port = free_port()
    log = settings.data_dir / f"server-{port}.log"
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(BIN / "scenery"), "serve", "--port", str(port), *extra],
            env=scenery_env(settings),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_ready(base, process, log)
            yield base
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def wait_ready(base: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log.read_text()}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server not ready after {timeout} s:\n{log.read_text()}")
