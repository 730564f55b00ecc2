"""The production server (``scenery serve --prod``: gunicorn configured by scenery.serving) under
slow clients: half-sent requests and trickling uploads hold no worker, a client that stops
sending is dropped, and a worker may take longer than gunicorn's timeout to load its app."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from scenery.config import Settings
from tests.conftest import REPO
from tests.live import BIN, Processes, free_port, scenery_env, wait_for, wait_ready
from tests.slowloris import HalfOpen, SlowUpload, probe

# Where ONNX exports are cached: passed on, so a child process does not export the model again.
ONNX_CACHE = "SCENERY_ONNX_DIR"

pytestmark = pytest.mark.slow

HALF_OPEN = 50
UPLOADS = 20
# Longer than gunicorn's deadline for a request's headers (scenery.serving.keepalive, 5 s), so
# half-sent requests meet that deadline first, as they do with the default of 60 s.
IDLE_SECONDS = 6


@dataclass
class Server:
    base: str
    port: int


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``scenery serve --prod`` (two gevent workers) on SQLite with the tiny model."""
    root = tmp_path_factory.mktemp("slow-clients")
    settings = Settings(data_dir=root / "data", database_url=f"sqlite:///{root / 'scenery.db'}")
    env = scenery_env(settings) | {"SCENERY_CLIENT_IDLE_SECONDS": str(IDLE_SECONDS)}
    processes = Processes(root / "logs")
    port = free_port()
    serve = processes.start("serve", env, "serve", "--prod", "--port", str(port))
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, serve, processes.log_dir / "serve.log", timeout=240)
        yield Server(base, port)
    finally:
        processes.stop_all()


@pytest.fixture(scope="module")
def image(photos: list[Path]) -> bytes:
    return min(photos, key=lambda p: p.stat().st_size).read_bytes()


def test_slow_clients_leave_healthz_answering_within_a_second(server: Server, image: bytes) -> None:
    half_open = HalfOpen(server.port, HALF_OPEN)
    uploads = [SlowUpload(server.port, image) for _ in range(UPLOADS)]
    answered: list[float] = []
    try:
        # Until the server has dropped as many half-sent requests as were first opened (its
        # deadline for headers); each dropped one is replaced at once, so every probe finds
        # 50 of them hanging, and 20 uploads still sending their bodies.
        deadline = time.monotonic() + 60
        while half_open.replaced < HALF_OPEN:
            assert time.monotonic() < deadline, f"{half_open.replaced} dropped in 60 s"
            for upload in uploads:
                upload.trickle()
            seconds = probe(server.base, timeout=5)
            assert seconds < 1.0, f"/healthz took {seconds:.2f} s after {len(answered)} answers"
            answered.append(seconds)
            half_open.wait_for_a_close(at_most=0.25)
            half_open.top_up()
        answers = [upload.finish() for upload in uploads]
    finally:
        half_open.close()
        for upload in uploads:
            upload.close()
    assert len(answered) >= 5
    # The slow uploads were served, not dropped: each got its search results.
    assert [status for status, _ in answers] == [200] * UPLOADS
    assert all(body["k"] == 3 and isinstance(body["results"], list) for _, body in answers)


def test_an_upload_that_stops_sending_is_dropped_after_the_idle_time(
    server: Server, image: bytes
) -> None:
    stalled = SlowUpload(server.port, image)  # headers and the first KiB, then nothing
    started = time.monotonic()
    status, body = stalled.response(timeout=IDLE_SECONDS + 30)
    waited = time.monotonic() - started
    # A client error (its body was cut short), not a server error, and not before its time.
    assert status == 400, body
    assert waited >= IDLE_SECONDS - 0.5
    assert probe(server.base, timeout=5) < 1.0


def test_a_worker_may_load_for_longer_than_gunicorns_timeout(tmp_path: Path) -> None:
    # The app takes 5 s to load and gunicorn kills a worker silent for 2 s: only the
    # heartbeat that scenery.serving keeps while a worker loads lets it start.
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCENERY_") or k == ONNX_CACHE}
    env.update(SCENERY_DATA_DIR=str(tmp_path / "data"), SLOW_BOOT_SECONDS="5")
    log = tmp_path / "gunicorn.log"
    command = [str(BIN / "gunicorn"), "-c", "python:scenery.serving", "--timeout", "2"]
    command += ["--workers", "1", "--bind", f"127.0.0.1:{port}", "tests.slow_boot_app:app"]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=out)
    base = f"http://127.0.0.1:{port}"

    def loaded() -> bool:
        try:
            return httpx.get(base, timeout=1).text == "loaded"
        except httpx.HTTPError:
            return False

    try:
        wait_for(
            lambda: loaded() or "WORKER TIMEOUT" in log.read_text(), 60, "the app or a timeout"
        )
        assert "WORKER TIMEOUT" not in log.read_text(), log.read_text()
        assert loaded()
    finally:
        process.terminate()
        process.wait(timeout=30)
