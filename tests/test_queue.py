"""The task queue built from settings: a SQLite file by default, Redis when named."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from huey import RedisHuey, SqliteHuey, signals

from scenery.config import Settings
from scenery.errors import ConfigError, QueueUnavailable, SceneryError
from scenery.queue import Job, TaskQueue, build_huey

REDIS_URL = "redis://127.0.0.1:6379/0"


def test_default_queue_is_a_sqlite_file_of_its_own_in_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "d")
    huey = build_huey(settings)
    assert isinstance(huey, SqliteHuey)
    queue = TaskQueue(settings, huey)
    queue.enqueue(Job.REFIT)
    assert (tmp_path / "d" / "queue.db").is_file()
    assert not (tmp_path / "d" / "scenery.db").exists()  # not the app database
    assert queue.pending() == 1


def test_redis_queue_is_shared_by_every_process_naming_it(tmp_path: Path) -> None:
    name = f"test-{uuid.uuid4().hex[:8]}"
    one = TaskQueue(Settings(data_dir=tmp_path / "a", queue_url=REDIS_URL, queue_name=name))
    two = TaskQueue(Settings(data_dir=tmp_path / "b", queue_url=REDIS_URL, queue_name=name))
    assert isinstance(one.huey, RedisHuey)
    try:
        one.enqueue(Job.INGEST, 7, "token")
        assert two.pending() == 1
        seen: list[tuple[object, ...]] = []
        two.serve({Job.INGEST: lambda *args: seen.append(args)})
        two.huey.execute(two.huey.dequeue())
        assert seen == [(7, "token")] and one.pending() == 0
    finally:
        one.flush()


def test_unknown_queue_url_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="redis://"):
        build_huey(Settings(data_dir=tmp_path, queue_url="amqp://127.0.0.1/"))


def test_a_process_without_handlers_refuses_to_run_jobs(tmp_path: Path) -> None:
    queue = TaskQueue(Settings(data_dir=tmp_path))
    queue.huey.immediate = True
    errors: list[BaseException] = []
    queue.huey.signal(signals.SIGNAL_ERROR)(lambda _sig, _task, exc: errors.append(exc))
    queue.enqueue(Job.REFIT)
    assert len(errors) == 1 and isinstance(errors[0], SceneryError)
    assert "no handler for refit_if_due" in str(errors[0])


def test_immediate_mode_runs_task_bodies_with_their_arguments(tmp_path: Path) -> None:
    queue = TaskQueue(Settings(data_dir=tmp_path))
    queue.huey.immediate = True
    calls: list[tuple[object, ...]] = []
    queue.serve({job: (lambda *a, job=job: calls.append((job, *a))) for job in Job})
    queue.enqueue(Job.INGEST, 3, "abc")
    queue.enqueue(Job.SAVE_INDEX)
    assert calls == [(Job.INGEST, 3, "abc"), (Job.SAVE_INDEX,)]


def test_housekeeping_is_periodic_only_where_the_scheduler_runs(tmp_path: Path) -> None:
    queue = TaskQueue(Settings(data_dir=tmp_path))
    periodic = {task.name for task in queue.huey._registry.periodic_tasks}
    assert periodic == {
        Job.RECOVER_LEASES.value,
        Job.SAVE_INDEX.value,
        Job.REFIT.value,
        Job.RETENTION.value,
        Job.BACKUP.value,
    }


def test_an_unreachable_redis_is_a_clear_error(tmp_path: Path) -> None:
    queue = TaskQueue(
        Settings(data_dir=tmp_path, queue_url="redis://127.0.0.1:1/0", queue_name="nowhere")
    )
    with pytest.raises(QueueUnavailable, match="task queue is unreachable"):
        queue.enqueue(Job.REFIT)
