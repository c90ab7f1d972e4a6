"""Hearing of commits made by other processes to the database.

The delivery worker is woken at once by messages its own process accepts; those accepted by a
`serve --role api` process beside it (same database) it would only find at its next poll, up
to a second later.

- SQLite counts the commits of other connections in `PRAGMA data_version`, read from shared
  memory (the WAL index) without touching the database file's pages, so a dedicated connection
  can look every few milliseconds for next to nothing. Commits of this process's other
  connections count too, so the worker is also woken after its own writes: a run more, which
  finds nothing and costs a millisecond or two (and runs that find nothing are spaced by the
  worker anyway).
- PostgreSQL has no such counter but has LISTEN/NOTIFY: an api process announces each group
  commit of new messages (`announce`, a NOTIFY inside the transaction, so it is heard only once
  the rows are committed) and the all process listens on a connection of its own, checked
  every half minute. When that connection is lost, it connects again a second later;
  meanwhile the worker's poll remains.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from storage.waiting import first_set, pause

log = logging.getLogger(__name__)

INTERVAL = 0.025  # seconds between looks (SQLite)
CHANNEL = "libral_outbox"  # PostgreSQL's NOTIFY channel for new messages
RECONNECT_AFTER = 1.0  # seconds before listening again on a lost connection (PostgreSQL)
CHECK_EVERY = 30.0  # seconds between checks that the listening connection still answers


def is_postgresql(url: str) -> bool:
    return make_url(url).get_backend_name() == "postgresql"


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL; None for another database or an in-memory one."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


async def watch_commits(
    path: Path, on_commit: Callable[[], None], stop: asyncio.Event, *, interval: float = INTERVAL
) -> None:
    """Call `on_commit()` soon after another connection commits to `path`, until `stop`."""
    # mode=rw: never creates a file. No busy handler: the PRAGMA takes no lock a writer holds.
    connection = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=0)
    try:
        seen: int | None = None
        while not stop.is_set():
            await pause(stop, interval)
            try:
                version = _version(connection)
            except sqlite3.Error as exc:  # e.g. the file being replaced; look again later
                log.warning("looking for other processes' commits failed: %s", type(exc).__name__)
                continue
            if seen is not None and version != seen:
                on_commit()
            seen = version
    finally:
        connection.close()


def _version(connection: sqlite3.Connection) -> int:
    row = connection.execute("PRAGMA data_version").fetchone()
    return int(row[0])


_ANNOUNCE = select(func.pg_notify(CHANNEL, ""))  # built once: it runs with every group commit


async def announce(session: AsyncSession) -> None:
    """Tell the listening process, once this session's transaction commits, that new messages
    are in (PostgreSQL only; NOTIFYs of one transaction on one channel arrive as one)."""
    await session.execute(_ANNOUNCE)


async def listen_for_commits(
    engine: AsyncEngine,
    on_commit: Callable[[], None],
    stop: asyncio.Event,
    *,
    reconnect_after: float = RECONNECT_AFTER,
    check_every: float = CHECK_EVERY,
) -> None:
    """Call `on_commit()` when a process announces new messages on `engine`'s PostgreSQL
    database, until `stop`. The connection is one of the engine's pool (so its connect
    arguments apply), held for as long as it serves; a lost one is dropped and replaced."""
    while not stop.is_set():
        try:
            async with engine.connect() as connection:
                await _listen_on(connection, on_commit, stop, check_every)
        except Exception as exc:  # the database is down or the link broke: the poll covers
            log.warning("listening for new messages failed: %s", type(exc).__name__)
            await pause(stop, reconnect_after)


async def _listen_on(
    connection: AsyncConnection,
    on_commit: Callable[[], None],
    stop: asyncio.Event,
    check_every: float,
) -> None:
    """Listen until `stop`; raises when the connection is lost, after dropping it from the
    pool (also when cancelled: it is never handed back with a listener on it)."""
    raw: Any = (await connection.get_raw_connection()).driver_connection  # asyncpg's
    lost = asyncio.Event()

    def heard(*_: object) -> None:
        on_commit()

    def gone(_connection: object) -> None:
        lost.set()

    clean = False
    try:
        raw.add_termination_listener(gone)
        await raw.add_listener(CHANNEL, heard)
        on_commit()  # what was committed while nobody listened
        while not stop.is_set():
            await first_set(stop, lost, within=check_every)
            if lost.is_set():
                raise ConnectionError("the listening connection was closed")
            if not stop.is_set():
                # A link that died without closing (a partition) would never tell.
                await asyncio.wait_for(raw.execute("SELECT 1"), check_every)
        await raw.remove_listener(CHANNEL, heard)
        raw.remove_termination_listener(gone)
        clean = True
    finally:
        if not clean:
            await connection.invalidate()
