"""Engine and session handling, and schema migrations through Alembic."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL, a busy timeout and enforced foreign keys."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """Open a session, commit on success, roll back on error.

    On SQLite the transaction takes the write lock at once (BEGIN IMMEDIATE): a deferred
    transaction that read first and then tried to write after another process committed
    would fail at once with "database is locked" instead of waiting its turn."""
    with factory() as session, session.begin():
        if session.get_bind().dialect.name == "sqlite":
            session.execute(text("BEGIN IMMEDIATE"))
        yield session


def exclusive(session: Session, name: str) -> None:
    """Hold a deployment-wide lock called ``name`` until this transaction ends.

    PostgreSQL: a transaction-level advisory lock. SQLite: ``transaction`` already holds the
    database's write lock, which excludes every other writer on the machine."""
    if session.get_bind().dialect.name == "postgresql":
        key = zlib.crc32(name.encode()) - 2**31  # a signed 32-bit key
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def alembic_config(engine: Engine, data_root: Path | None = None) -> Config:
    """An Alembic config bound to this engine, with no alembic.ini needed. ``data_root``: where
    the files are, for migrations that compute new columns from them."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    config.attributes["data_root"] = data_root
    return config


def migrate(engine: Engine, data_root: Path | None = None) -> None:
    """Bring the schema up to the newest migration."""
    command.upgrade(alembic_config(engine, data_root), "head")
