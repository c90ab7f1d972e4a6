"""Engine and session factory, built by the composition root from the database URL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def ensure_sqlite_dir(url: str) -> None:
    """Create the folder of a SQLite database file (e.g. ./var/) so first start just works."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the HTTP API read while the worker writes; foreign keys make cascades real;
    # busy_timeout turns lock contention into a wait instead of an error: generous, because on a
    # loaded two-CPU machine (a benchmark setting up 120 people under load) 5 s was exceeded
    # and a bot command failed without an answer; waiting runs in aiosqlite's thread, not
    # on the event loop.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Deleted rows (wiped content, purged records) are overwritten, not left in free pages.
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    ensure_sqlite_dir(url)
    # hide_parameters: SQL errors (which end up in logs) must not quote the values they bound.
    engine = create_async_engine(
        url, echo=echo, pool_pre_ping=not is_sqlite(url), hide_parameters=True
    )
    if is_sqlite(url):
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
