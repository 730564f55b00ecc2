"""Processes for bench/load.py: start them in their own sessions, stop them for sure, wait
for the server, and count the CPU time each uses."""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil  # comes with locust


@contextmanager
def started(
    command: list[str], env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a process in its own session (Ctrl-C reaches only this script, which stops it):
    SIGTERM to its group at the end, SIGKILL if it has not gone 20 s later."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def cpu_seconds(process: subprocess.Popen[bytes] | None) -> float:
    """CPU seconds used so far by a process and its live children (gunicorn's workers)."""
    if process is None:
        return 0.0
    try:
        root = psutil.Process(process.pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for member in tree:
        try:
            times = member.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def cpu_snapshot(
    server: subprocess.Popen[bytes], worker: subprocess.Popen[bytes] | None
) -> Counter[str]:
    """CPU seconds so far: the server, the worker, locust (this script's only child to end
    during a level), this script (the fake Reddit, the feeder), and the whole machine."""
    machine = psutil.cpu_times()
    own, ended = os.times(), resource.getrusage(resource.RUSAGE_CHILDREN)
    busy = machine.user + machine.nice + machine.system + machine.irq + machine.softirq
    return Counter(
        {
            "web server": cpu_seconds(server),
            "worker": cpu_seconds(worker),
            "locust": ended.ru_utime + ended.ru_stime,
            "this script": own.user + own.system,
            "machine": busy + machine.steal,
        }
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(base: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited ({server.returncode}):\n{tail(log)}")
        try:
            if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"the server did not start:\n{tail(log)}")


def tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
