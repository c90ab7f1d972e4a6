"""Which errors say the database is unavailable (503, retry) rather than that a statement or a
request was wrong (500): storage.unavailable, as a table of cases with real driver errors."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import asyncpg.exceptions as pg
import pytest
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from storage.unavailable import database_unavailable


def _sqlite_error(tmp_path: Path, statement: str, *, locked: bool = False) -> sqlite3.Error:
    """What sqlite3 itself raises for `statement` (with the database's write lock held by
    another connection if `locked`)."""
    path = tmp_path / "db.sqlite3"
    with closing(sqlite3.connect(path, isolation_level=None, timeout=0)) as own:
        own.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER PRIMARY KEY)")
        with closing(sqlite3.connect(path, isolation_level=None)) as other:
            if locked:
                other.execute("BEGIN IMMEDIATE")
            try:
                own.execute(statement)
            except sqlite3.Error as error:
                return error
    raise AssertionError(f"{statement!r} did not fail")


def _wrapped(orig: BaseException, kind: type[DBAPIError] = OperationalError) -> DBAPIError:
    return kind("SELECT 1", {}, orig)


@pytest.mark.parametrize(
    ("server_error", "unavailable"),
    [
        (pg.ConnectionFailureError, True),  # 08006
        (pg.TooManyConnectionsError, True),  # 53300
        (pg.DiskFullError, True),  # 53100
        (pg.AdminShutdownError, True),  # 57P01: the server shutting down
        (pg.CannotConnectNowError, True),  # 57P03: the server starting up
        # A deadlock or a serialization failure: nothing was applied, and the same request
        # again succeeds (nothing in the gateway retries it itself).
        (pg.DeadlockDetectedError, True),  # 40P01
        (pg.SerializationError, True),  # 40001
        (pg.UniqueViolationError, False),  # 23505: the request's own
        (pg.UndefinedTableError, False),  # 42P01: a bug
    ],
)
def test_postgresql_errors_by_their_sqlstate(
    server_error: type[pg.PostgresError], unavailable: bool
) -> None:
    # As SQLAlchemy's asyncpg adapter raises them, the server's SQLSTATE on the error.
    orig = AsyncAdapt_asyncpg_dbapi.Error("from the server", server_error())
    assert database_unavailable(_wrapped(orig)) is unavailable


def test_sqlite_busy_is_unavailable_and_a_missing_table_is_not(tmp_path: Path) -> None:
    busy = _sqlite_error(tmp_path, "INSERT INTO t VALUES (1)", locked=True)
    assert database_unavailable(_wrapped(busy))
    missing = _sqlite_error(tmp_path, "SELECT * FROM gone")
    assert not database_unavailable(_wrapped(missing))
    syntax = _sqlite_error(tmp_path, "SELEKT 1")
    assert not database_unavailable(_wrapped(syntax))
    duplicate = _sqlite_error(tmp_path, "INSERT INTO t VALUES (1), (1)")
    assert not database_unavailable(_wrapped(duplicate, IntegrityError))


def test_the_write_gates_own_lock_timeout_is_unavailable() -> None:
    # storage.sqlite_driver raises it without a result code when its turn does not come.
    assert database_unavailable(_wrapped(sqlite3.OperationalError("database is locked")))
    assert not database_unavailable(_wrapped(sqlite3.OperationalError("no such column: x")))


def test_a_broken_connection_and_an_empty_pool_are_unavailable() -> None:
    broken = _wrapped(AsyncAdapt_asyncpg_dbapi.Error("gone", pg.InternalServerError()))
    assert not database_unavailable(broken)
    broken.connection_invalidated = True
    assert database_unavailable(broken)
    assert database_unavailable(PoolTimeout("QueuePool limit reached"))


def test_an_os_error_counts_only_when_a_database_driver_raised_it() -> None:
    # A client hanging up mid-body: aiohttp raises ConnectionResetError, nothing to do with
    # the database (a refused PostgreSQL port: tests/api/test_send.py).
    with pytest.raises(ConnectionResetError) as hung_up:
        raise ConnectionResetError("Connection lost")  # with a traceback, as caught
    assert not database_unavailable(hung_up.value)
    assert not database_unavailable(ValueError("a bug"))
