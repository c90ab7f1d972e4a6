"""Run Alembic migrations from code (used by `libral-gateway migrate`, `serve` and tests)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, inspect, text

import migrations
from storage.engine import create_engine, ensure_sqlite_dir

T = TypeVar("T")
_ROOT = Path(migrations.__file__).resolve().parent


def alembic_config(database_url: str) -> Config:
    """Alembic config that works from any working directory and leaves logging alone."""
    ini = _ROOT.parent / "alembic.ini"
    cfg = Config(str(ini) if ini.exists() else None)
    cfg.set_main_option("script_location", str(_ROOT))
    cfg.attributes["database_url"] = database_url
    cfg.attributes["configure_logging"] = False
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    """Blocking: call before the event loop starts (Alembic's async env runs its own loop)."""
    ensure_sqlite_dir(database_url)
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)


def current_heads(database_url: str) -> tuple[str, ...]:
    from alembic.script import ScriptDirectory

    return tuple(ScriptDirectory.from_config(alembic_config(database_url)).get_heads())


def on_connection(database_url: str, work: Callable[[Connection], T]) -> T:
    """`work` on a connection to the database, in a transaction that commits. Blocking, like
    `upgrade` (it runs its own event loop)."""

    async def run() -> T:
        engine = create_engine(database_url)
        try:
            async with engine.begin() as connection:
                return await connection.run_sync(work)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def database_heads(database_url: str) -> tuple[str, ...]:
    """The revisions the database is at (none for an empty one), sorted. Read from Alembic's
    version table directly: its MigrationContext logs at INFO."""

    def versions(connection: Connection) -> tuple[str, ...]:
        if not inspect(connection).has_table("alembic_version"):
            return ()
        rows = connection.execute(text("SELECT version_num FROM alembic_version"))
        return tuple(sorted(row[0] for row in rows))

    return on_connection(database_url, versions)


def is_at_head(database_url: str) -> bool:
    """Whether the database is at the newest schema (what `upgrade` would leave it at)."""
    return database_heads(database_url) == tuple(sorted(current_heads(database_url)))
