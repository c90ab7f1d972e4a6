"""Hearing of commits made by other processes to a SQLite database.

The delivery worker is woken at once by messages its own process accepts; those accepted by a
`serve --role api` process beside it (same database file) it would only find at its next poll,
up to a second later. SQLite counts the commits of other connections in `PRAGMA data_version`,
read from shared memory (the WAL index) without touching the database file's pages, so a
dedicated connection can look every few milliseconds for next to nothing.

Commits of this process's other connections count too, so the worker is also woken after its
own writes: a run more, which finds nothing and costs a millisecond or two (and runs that find
nothing are spaced by the worker anyway). PostgreSQL has no such counter; there the worker's
poll remains (LISTEN/NOTIFY would be the way).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

INTERVAL = 0.025  # seconds between looks


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
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
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
