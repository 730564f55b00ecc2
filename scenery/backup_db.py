"""The database half of a backup: a consistent snapshot while the gallery runs, and its restore.

SQLite: the online backup API copies the live file in one step, inside one read transaction (in
WAL mode writers carry on). PostgreSQL: a repeatable-read transaction exports its snapshot, reads
the image rows and hands the snapshot to ``pg_dump --snapshot``, so the dump and the list of
files to copy are the same moment. Either way the snapshot comes first: every row in it had its
files on disk before it committed (``scenery.intake``), so copying what its rows name afterwards
gives a whole backup.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
import uuid
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, func, inspect, select, text
from sqlalchemy.engine import URL, make_url

from scenery.backup_manifest import BackupError, DatabaseDump, copy_hashed, hash_file
from scenery.models import Image

SQLITE_FILE = "database.sqlite3"
PG_FILE = "database.pgdump"


@dataclass(frozen=True)
class KeptImage:
    """An image row of the snapshot whose files the gallery keeps (not purged)."""

    id: int
    sha256: str
    path: str


@dataclass(frozen=True)
class Snapshot:
    dump: DatabaseDump
    kept: list[KeptImage]
    images: dict[str, int]  # rows by status


def snapshot_database(engine: Engine, folder: Path) -> Snapshot:
    """Write a consistent copy of the live database into ``folder``; what it holds."""
    if engine.dialect.name == "sqlite":
        return _snapshot_sqlite(engine.url, folder)
    if engine.dialect.name == "postgresql":
        return _snapshot_postgresql(engine, folder)
    raise BackupError(f"cannot back up a {engine.dialect.name} database")


def _snapshot_sqlite(url: URL, folder: Path) -> Snapshot:
    source_path = sqlite_path(url)
    if not source_path.is_file():
        raise BackupError(f"the database file {source_path} does not exist")
    target = folder / SQLITE_FILE
    source = sqlite3.connect(source_path, timeout=30)
    with closing(source), closing(sqlite3.connect(target)) as copy:
        source.backup(copy)  # all pages in one step: one read transaction, one moment
        copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
    reader = create_engine(f"sqlite:///{target}")
    try:
        with reader.connect() as conn:
            kept, images, revision = _read(conn)
    finally:
        reader.dispose()
    size, sha256 = hash_file(target)
    return Snapshot(DatabaseDump("sqlite", SQLITE_FILE, size, sha256, revision), kept, images)


def _snapshot_postgresql(engine: Engine, folder: Path) -> Snapshot:
    target = folder / PG_FILE
    with engine.connect() as conn:
        conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            snapshot = conn.scalar(text("SELECT pg_export_snapshot()"))
            schema = str(conn.scalar(text("SELECT current_schema()")))
            kept, images, revision = _read(conn)
            # The exported snapshot lives as long as this transaction: pg_dump runs inside it.
            options = [f"--snapshot={snapshot}", f'--schema="{schema}"', f"--file={target}"]
            _pg_tool("pg_dump", ["--format=custom", *options], engine.url)
    size, sha256 = hash_file(target)
    dump = DatabaseDump("postgresql", PG_FILE, size, sha256, revision, schema)
    return Snapshot(dump, kept, images)


def _read(conn: Connection) -> tuple[list[KeptImage], dict[str, int], str | None]:
    rows = conn.execute(
        select(Image.id, Image.sha256, Image.path)
        .where(Image.purged_at.is_(None))
        .order_by(Image.id)
    )
    kept = [KeptImage(row.id, row.sha256, row.path) for row in rows]
    counts = conn.execute(select(Image.status, func.count()).group_by(Image.status))
    images = {str(status): int(count) for status, count in counts}
    revision = conn.scalar(text("SELECT version_num FROM alembic_version"))
    return kept, images, revision


# -- restore ----------------------------------------------------------------------------------


def check_target(dump: DatabaseDump, url: str) -> list[str]:
    """What the target database already holds (table names, empty when nothing); raises when
    it cannot take this dump at all."""
    target = make_url(url)
    if target.get_backend_name() != dump.dialect:
        raise BackupError(
            f"the backup holds a {dump.dialect} database and SCENERY_DATABASE_URL names a "
            f"{target.get_backend_name()} one: restore into the same kind of database"
        )
    if dump.dialect == "sqlite":
        path = sqlite_path(target)
        if not path.exists():
            return []
        try:
            with closing(sqlite3.connect(path)) as conn:
                return [row[0] for row in conn.execute("SELECT name FROM sqlite_master")]
        except sqlite3.DatabaseError as exc:
            raise BackupError(f"{path} is there and is no SQLite database: {exc}") from exc
    engine = create_engine(target)
    try:
        with engine.connect() as conn:
            schema = _target_schema(conn, dump)
            if schema not in inspect(conn).get_schema_names():
                return []
            return list(
                conn.scalars(
                    text(
                        "SELECT c.relname FROM pg_class c JOIN pg_namespace n "
                        "ON n.oid = c.relnamespace WHERE n.nspname = :schema "
                        "UNION ALL SELECT t.typname FROM pg_type t JOIN pg_namespace n "
                        "ON n.oid = t.typnamespace WHERE n.nspname = :schema AND t.typtype = 'e'"
                    ),
                    {"schema": schema},
                )
            )
    finally:
        engine.dispose()


def restore_database(dump: DatabaseDump, file: Path, url: str, *, force: bool) -> None:
    """Load the snapshot into the target database (which ``check_target`` found empty, or
    whose contents ``force`` replaces)."""
    if dump.dialect == "sqlite":
        _restore_sqlite(dump, file, sqlite_path(make_url(url)))
    else:
        _restore_postgresql(dump, file, make_url(url), force=force)


def _restore_sqlite(dump: DatabaseDump, file: Path, path: Path) -> None:
    for suffix in ("-wal", "-shm", "-journal"):  # a previous database's logs must not replay
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        if copy_hashed(file, tmp) != (dump.size, dump.sha256):
            raise BackupError(f"{file} changed while it was restored")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _restore_postgresql(dump: DatabaseDump, file: Path, url: URL, *, force: bool) -> None:
    schema = dump.schema or "public"
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            exists = schema in inspect(conn).get_schema_names()
            if exists and force:
                quoted = conn.dialect.identifier_preparer.quote(schema)
                conn.execute(text(f"DROP SCHEMA {quoted} CASCADE"))
                conn.execute(text(f"CREATE SCHEMA {quoted}"))
    finally:
        engine.dispose()
    options = ["--no-owner", "--no-privileges", "--single-transaction", "--exit-on-error"]
    if not exists:
        _pg_tool("pg_restore", [*options, str(file)], url)
        return
    # The schema is there already (``public`` always is): restore everything but its creation.
    listing = _pg_tool("pg_restore", ["--list", str(file)])
    own = re.compile(rf"^\d+; \d+ \d+ (SCHEMA - |COMMENT - SCHEMA ){re.escape(schema)} ")
    kept = "\n".join(line for line in listing.splitlines() if not own.match(line))
    with tempfile.NamedTemporaryFile("w", suffix=".list") as entries:
        entries.write(kept)
        entries.flush()
        _pg_tool("pg_restore", [*options, "--use-list", entries.name, str(file)], url)


def _target_schema(conn: Connection, dump: DatabaseDump) -> str:
    """The schema of the target's search path that will hold the gallery after the restore:
    the backup's, which the restore creates, unless a schema before it already exists."""
    user = str(conn.scalar(text("SELECT current_user")))
    existing = set(inspect(conn).get_schema_names())
    for part in str(conn.scalar(text("SHOW search_path"))).split(","):
        name = part.strip()
        if name.startswith('"') and name.endswith('"'):
            name = name[1:-1].replace('""', '"')
        name = user if name == "$user" else name
        if name == dump.schema:
            return name
        if name in existing:
            raise BackupError(
                f"the backup holds the PostgreSQL schema {dump.schema!r}, but the target's "
                f"search path finds {name!r} first: point SCENERY_DATABASE_URL at a database "
                f"whose search path names {dump.schema!r} (options=-csearch_path={dump.schema})"
            )
    raise BackupError(
        f"the backup holds the PostgreSQL schema {dump.schema!r}, which the target's search "
        f"path does not name: add options=-csearch_path={dump.schema} to SCENERY_DATABASE_URL"
    )


# -- shared -----------------------------------------------------------------------------------


def sqlite_path(url: URL) -> Path:
    """The file of a SQLite URL."""
    if not url.database or url.database == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up or restored")
    return Path(url.database).expanduser().resolve()


def _pg_tool(tool: str, arguments: list[str], url: URL | None = None) -> str:
    """Run a PostgreSQL client tool, against ``url`` when given (its password through the
    environment, never on the command line); its standard output, or a BackupError."""
    program = shutil.which(tool)
    if program is None:
        raise BackupError(
            f"{tool} is not installed: install the PostgreSQL client tools (of the server's "
            "major version or newer)"
        )
    env = dict(os.environ)  # PATH, locale, PGSSL*...: what libpq would see in a shell
    command = [program, *arguments]
    if url is not None:
        if url.password is not None:
            env["PGPASSWORD"] = str(url.password)
        conninfo = url._replace(drivername="postgresql", password=None)
        command.insert(1, f"--dbname={conninfo.render_as_string(hide_password=False)}")
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BackupError(f"{tool} failed: {done.stderr.strip()[-2000:]}")
    return done.stdout
