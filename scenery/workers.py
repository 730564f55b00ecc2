"""Worker heartbeats and task failures: who is working, on what, and what went wrong."""

from __future__ import annotations

import os
import socket
import uuid
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from scenery.models import TaskFailure, Worker, utcnow

ALIVE = timedelta(minutes=5)  # a worker seen this recently counts as alive
KEEP_FAILURES = 200


def worker_id() -> str:
    """This process's worker id: host, pid and a random part (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def register(session: Session, wid: str, *, scheduler: bool, threads: int) -> None:
    host, pid = wid.split(":")[0], int(wid.split(":")[1])
    session.add(Worker(id=wid, host=host, pid=pid, scheduler=scheduler, threads=threads))


def beat(session: Session, wid: str, task: str | None) -> None:
    """Say this worker is alive, and what it holds."""
    session.execute(
        update(Worker)
        .where(Worker.id == wid)
        .values(last_seen_at=utcnow(), task=task)
        .execution_options(synchronize_session=False)
    )


def stopped(session: Session, wid: str) -> None:
    session.execute(
        update(Worker)
        .where(Worker.id == wid)
        .values(stopped_at=utcnow(), last_seen_at=utcnow(), task=None)
        .execution_options(synchronize_session=False)
    )


def alive(session: Session, within: timedelta = ALIVE) -> list[Worker]:
    """Workers seen recently that did not say they stopped, newest first."""
    return list(
        session.scalars(
            select(Worker)
            .where(Worker.last_seen_at >= utcnow() - within, Worker.stopped_at.is_(None))
            .order_by(Worker.started_at.desc())
        )
    )


def record_failure(session: Session, task: str, args: str, wid: str, error: str) -> None:
    """Remember a failed task (only the newest few hundred are kept)."""
    session.add(TaskFailure(task=task, args=args[:500], worker=wid, error=error[:4000]))
    session.flush()
    newest = session.scalars(
        select(TaskFailure.id).order_by(TaskFailure.id.desc()).offset(KEEP_FAILURES).limit(1)
    ).first()
    if newest is not None:
        session.execute(delete(TaskFailure).where(TaskFailure.id <= newest))


def last_failures(session: Session, limit: int = 10) -> list[TaskFailure]:
    return list(session.scalars(select(TaskFailure).order_by(TaskFailure.id.desc()).limit(limit)))
