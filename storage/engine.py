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

from storage import sqlite_driver

SQLITE_POOL = 16


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def ensure_sqlite_dir(url: str) -> None:
    """Create the folder of a SQLite database file (e.g. ./var/) so first start just works."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the HTTP API read while the worker writes; foreign keys make cascades real.
    # (busy_timeout is 0 from the connect arguments: see create_engine.)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Deleted rows (wiped content, purged records) are overwritten, not left in free pages.
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    ensure_sqlite_dir(url)
    # hide_parameters: SQL errors (which end up in logs) must not quote the values they bound.
    if is_sqlite(url):
        # Statements on the event loop, writers queued on it (storage.sqlite_driver).
        # A pool as large as the worker's and the API's concurrent sessions: beyond pool_size
        # each checkout opened a connection (a thread and five PRAGMAs) and closed it on
        # return, about 260 times in a 3,000-message bench/pipeline.py run with the default 5.
        extra: dict[str, Any] = {
            "module": sqlite_driver.dbapi(),
            "pool_size": SQLITE_POOL,
            # busy_timeout 0: statements run on the event loop, which must never sleep in
            # SQLite's busy handler, from the connect-time PRAGMAs on (sqlite3's default is
            # 5 s); one that finds the lock taken by another process is run again on
            # aiosqlite's thread and waits there (storage.sqlite_driver).
            "connect_args": {"timeout": 0},
        }
    else:
        extra = {"pool_pre_ping": True}
    engine = create_async_engine(url, echo=echo, hide_parameters=True, **extra)
    if is_sqlite(url):
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
