"""Helpers for tests that run real processes: a free port, a server, its readiness."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from scenery.config import Settings

# Where ONNX exports are cached: passed on, so a child process does not export the model again.
ONNX_CACHE = "SCENERY_ONNX_DIR"

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scenery_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCENERY_") or k == ONNX_CACHE}
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


def settings_env(settings: Settings, **extra: object) -> dict[str, str]:
    """The environment that gives a ``scenery`` process these settings (every field that was
    set explicitly), plus ``extra`` (setting names, lower case)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCENERY_") or k == ONNX_CACHE}
    values = {name: getattr(settings, name) for name in settings.model_fields_set}
    values.update(extra)
    for name, value in values.items():
        if value is None:
            continue
        text = ("1" if value else "0") if isinstance(value, bool) else str(value)
        env[f"SCENERY_{name.upper()}"] = text
    return env


class Processes:
    """Real ``scenery`` processes started by a test, each logging to a file; all are stopped
    (and killed if they hang) when the test ends."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(self, name: str, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [str(BIN / "scenery"), *args], env=env, stdout=out, stderr=subprocess.STDOUT
            )
        self.started.append((process, log))
        return process

    def log(self, process: subprocess.Popen[bytes]) -> str:
        return next(log.read_text() for p, log in self.started if p is process)

    def logs(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for _, log in self.started)

    def stop_all(self) -> None:
        for process, _ in self.started:
            if process.poll() is None:
                process.terminate()
        for process, _ in self.started:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_for(condition: Callable[[], object], timeout: float, what: str, step: float = 0.2) -> None:
    """Poll until ``condition()`` is true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
