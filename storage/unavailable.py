"""Telling a database that is unavailable from a request or a query that is wrong.

The HTTP API answers the first with 503 and a time to retry (it usually passes: a lock held by
another process, a server restarting, no connection to be had), the second with a 500 and a
traceback (a bug, which retrying does not mend). The line between them:

- SQLite: the primary result codes of a busy, locked, full, unreadable or unwritable database
  (a missing table or a syntax error is SQLITE_ERROR: a bug). `storage.sqlite_driver`'s write
  gate raises "database is locked" without a code when its turn does not come in time.
- PostgreSQL: SQLSTATE classes 08 (connection exception), 53 (insufficient resources) and 57P
  (the server shutting down or starting), a deadlock or a serialization failure (nothing was
  applied, and the same request again succeeds), and any error SQLAlchemy found to have broken
  the connection. A connection refused, a host not found or a connect timeout are raised by
  asyncpg as the OS's own errors (not DB-API errors): they count only when raised from inside
  the database drivers themselves, so that a client hanging up mid-request (also a
  ConnectionError) is not taken for the database.
- No connection to be had from SQLAlchemy's pool in time.
"""

from __future__ import annotations

import sqlite3
import traceback

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

_SQLITE_UNAVAILABLE = frozenset(
    {
        5,  # SQLITE_BUSY
        6,  # SQLITE_LOCKED
        7,  # SQLITE_NOMEM
        8,  # SQLITE_READONLY
        10,  # SQLITE_IOERR
        13,  # SQLITE_FULL
        14,  # SQLITE_CANTOPEN
        15,  # SQLITE_PROTOCOL
    }
)
_POSTGRESQL_UNAVAILABLE = ("08", "53", "57P", "40001", "40P01")
# Not SQLAlchemy's or our repositories' modules: every database call passes through them, and
# an OS error raised elsewhere beneath them (an event hook, say) is not the database's.
_DRIVERS = ("asyncpg.", "aiosqlite.", "storage.sqlite_driver")


def database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database could not serve (see the module), not that the
    statement or the request was wrong."""
    if isinstance(exc, PoolTimeout):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        return _unavailable_error(exc.orig)
    if isinstance(exc, OSError):
        return _raised_by_a_driver(exc)
    return False


def _unavailable_error(error: BaseException | None) -> bool:
    if isinstance(error, sqlite3.Error):
        code = getattr(error, "sqlite_errorcode", None)
        if code is None:  # the write gate's own, or sqlite3's without a result code
            return isinstance(error, sqlite3.OperationalError) and "locked" in str(error)
        return code & 0xFF in _SQLITE_UNAVAILABLE
    sqlstate = getattr(error, "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate.startswith(_POSTGRESQL_UNAVAILABLE)


def _raised_by_a_driver(exc: OSError) -> bool:
    for frame, _ in traceback.walk_tb(exc.__traceback__):
        module = frame.f_globals.get("__name__", "")
        if isinstance(module, str) and module.startswith(_DRIVERS):
            return True
    return False
