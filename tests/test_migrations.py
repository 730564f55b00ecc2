"""Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from scenery.context import Context
from scenery.db import alembic_config
from scenery.models import Base


def test_migrated_schema_matches_the_models(ctx: Context) -> None:
    with ctx.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_downgrade_and_upgrade_again(ctx: Context) -> None:
    config = alembic_config(ctx.engine)
    command.downgrade(config, "base")
    assert "images" not in inspect(ctx.engine).get_table_names()
    command.upgrade(config, "head")
    assert {"images", "embeddings", "publication_events"} <= set(
        inspect(ctx.engine).get_table_names()
    )


def test_sqlite_runs_in_wal_mode(ctx: Context) -> None:
    if ctx.engine.dialect.name != "sqlite":
        return
    with ctx.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
