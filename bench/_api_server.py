"""One ``scenery serve --prod --workers 1`` for bench/api_latency.py: its cold start, its
worker process, and what that worker holds in memory."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import httpx

BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class WorkerMemory:
    """A gunicorn worker's resident set and which inference libraries it has mapped."""

    rss_mib: float
    torch: bool
    onnxruntime: bool


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """Launches the production server with ``env`` and times its way to answering."""

    def __init__(self, env: dict[str, str], log: Path, port: int = 0) -> None:
        self.env = env
        self.log = log
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.launched = 0.0

    def __enter__(self) -> Server:
        command = [
            str(BIN / "scenery"),
            "serve",
            "--prod",
            "--workers",
            "1",
            "--port",
            str(self.port),
        ]
        with self.log.open("wb") as log:
            self.launched = time.perf_counter()
            self.process = subprocess.Popen(
                command, env=self.env, stdout=subprocess.DEVNULL, stderr=log
            )
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def wait_healthy(self, timeout: float = 300) -> float:
        """Seconds from launch until ``/healthz`` answers 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise SystemExit(f"server exited {self.process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(self.base + "/healthz", timeout=2).status_code == 200:
                    return time.perf_counter() - self.launched
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise SystemExit(f"server did not answer /healthz in {timeout:.0f} s:\n{self.log_tail()}")

    def since_launch(self, call: Callable[[], httpx.Response]) -> float:
        """Make one request; seconds from launch until it was answered."""
        call().raise_for_status()
        return time.perf_counter() - self.launched

    def worker(self) -> int:
        """The gunicorn worker's pid: the one child of the master (``scenery serve`` execs
        gunicorn)."""
        assert self.process is not None
        master = self.process.pid
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        if len(children) != 1:
            raise SystemExit(f"expected one gunicorn worker, found {len(children)}")
        return int(children[0])

    def worker_memory(self) -> WorkerMemory:
        """The worker's VmRSS, and whether libtorch / onnxruntime are mapped into it."""
        pid = self.worker()
        status = Path(f"/proc/{pid}/status").read_text()
        rss_kib = next(
            int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")
        )
        maps = Path(f"/proc/{pid}/maps").read_text()
        return WorkerMemory(
            rss_mib=rss_kib / 1024,
            torch="libtorch" in maps,
            onnxruntime="onnxruntime" in maps,
        )

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
