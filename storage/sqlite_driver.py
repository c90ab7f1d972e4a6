"""SQLAlchemy's aiosqlite driver, with statements run on the event loop and writers queued on it.

aiosqlite runs every sqlite3 call in a thread of its own and hands the result back to the event
loop, and SQLAlchemy's adapter makes that trip once per DB-API call: create the cursor, execute,
fetch, close. Measured during `bench/pipeline.py`, a primary-key UPDATE that takes SQLite 0.03
ms took 0.6 ms on the thread (waiting for the GIL the event loop holds) and each trip about 1 ms
more before the loop resumed the caller. And a transaction holds SQLite's single write lock
across all of its trips, so every writer waited for them: 28 ms on average to claim a message.

So here a statement runs where its caller is, on the event loop, in one call (cursor, execute,
fetchall, close): a few hundredths of a millisecond of SQLite, which is less than a trip used
to cost. Two things keep the loop from ever waiting on SQLite's lock:

- Writers of one engine take turns through a `WriteGate` on the event loop. A transaction
  enters the gate before its first write and leaves it when it commits or rolls back (or ends
  by itself, in autocommit), so in one process no write ever finds the lock taken. Without it
  the waiters would also go to the thread and sleep there between tries (see `_waiting`),
  on and off while the lock stood free.
- The connection's busy timeout is 0 on the loop. When the lock is taken all the same (by
  another process: the CLI, a second gateway), SQLite answers "database is locked" at once
  without doing anything, and the statement is run again on aiosqlite's thread, which waits
  for the lock there, trying again after short pauses for up to BUSY_TIMEOUT_MS.

A write is told by its first keyword (INSERT, UPDATE, DELETE, REPLACE: what SQLAlchemy emits
here). One that began otherwise (a CTE) would pass the gate and, finding the lock taken, wait
on the thread like another process's writer: slower, never stuck.

A statement still takes the loop for as long as SQLite works on it: a bulk DELETE of the
retention job holds it for that time. Reads never wait for the lock (WAL).

It is otherwise the stock adapter: the engine is built with `module=dbapi()`, replacing the
DB-API module SQLAlchemy's aiosqlite dialect would import; connecting, error translation and
server-side cursors are SQLAlchemy's and aiosqlite's. It uses two internals of aiosqlite that
SQLAlchemy's own adapter uses too (`Connection._execute`, `Connection._conn`); the lock file
pins both libraries, and the whole test suite runs through this module.
"""

from __future__ import annotations

import asyncio
import collections
import sqlite3
import time
from collections.abc import Callable
from typing import Any, TypeVar

import aiosqlite
from sqlalchemy.connectors.asyncio import AsyncIODBAPIConnection
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import immutabledict
from sqlalchemy.util.concurrency import await_

T = TypeVar("T")

# How long a statement waits for another process's write lock, on aiosqlite's thread.
BUSY_TIMEOUT_MS = 30_000
# The longest a transaction waits for its turn to write: as long as the busy timeout.
GATE_TIMEOUT = BUSY_TIMEOUT_MS / 1000
# Pauses between tries while another process holds the lock (see _waiting), in seconds.
BUSY_FIRST_PAUSE = 0.0002
BUSY_PAUSE_GROWTH = 1.25
BUSY_LONGEST_PAUSE = 0.005
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")
_SQLITE_BUSY = 5
_SQLITE_BUSY_SNAPSHOT = 517  # a stale read snapshot: waiting cannot help, so it is raised

# What a statement leaves behind: description, rows, rowcount, lastrowid.
_Outcome = tuple[Any, list[Any], int, int | None]


def _run(conn: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> _Outcome:
    """The whole statement, cursor to close."""
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        else:
            cursor.execute(operation, () if parameters is None else parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


def _waiting(
    conn: sqlite3.Connection,
    call: Callable[[], T],
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """On aiosqlite's thread: `call`, tried again while another process holds the lock, for
    up to BUSY_TIMEOUT_MS. SQLite's own busy handler sleeps 1, 2, 5, 10, 15, 20, 25 ms and
    longer between tries: a lock held for a tenth of a millisecond (another process's group
    commit) cost the waiter milliseconds, and under steady contention tens of them, with the
    CPU idle meanwhile. Here the pauses start at BUSY_FIRST_PAUSE and grow to BUSY_LONGEST_PAUSE,
    so a short hold costs about as long as it lasts and a long one few wakeups."""
    deadline = clock() + BUSY_TIMEOUT_MS / 1000
    pause = BUSY_FIRST_PAUSE
    while True:
        try:
            return call()
        except sqlite3.OperationalError as error:
            if not _is_busy(error) or clock() >= deadline:
                raise
        sleep(pause)
        pause = min(pause * BUSY_PAUSE_GROWTH, BUSY_LONGEST_PAUSE)


def _is_busy(error: sqlite3.OperationalError) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    return code is not None and code & 0xFF == _SQLITE_BUSY and code != _SQLITE_BUSY_SNAPSHOT


def is_write(operation: str) -> bool:
    return operation.lstrip()[:7].upper().startswith(_WRITES)


class WriteGate:
    """One writer at a time per engine, queued in order on the event loop (see the module)."""

    def __init__(self) -> None:
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.waiting = 0  # transactions queued for their turn now

    def _current(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._loop is not loop:
            # An engine serves one event loop at a time (the tests build one per loop).
            self._lock, self._loop = asyncio.Lock(), loop
        return self._lock

    async def enter(self) -> asyncio.Lock:
        lock = self._current()
        self.waiting += 1
        try:
            async with asyncio.timeout(GATE_TIMEOUT):
                await lock.acquire()
        except TimeoutError:
            raise sqlite3.OperationalError("database is locked") from None
        finally:
            self.waiting -= 1
        return lock


class InlineCursor(AsyncAdapt_aiosqlite_cursor):
    """A client-side cursor that runs its statement on the event loop (see the module)."""

    __slots__ = ("_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: AsyncAdapt_aiosqlite_connection) -> None:
        # No aiosqlite cursor up front: that was a trip of its own.
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = immutabledict()
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]

    @property
    def arraysize(self) -> int:
        return 1

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        pass  # rows are fetched all at once; nothing to size

    async def _async_soft_close(self) -> None:
        return None  # the sqlite3 cursor is closed already

    def close(self) -> None:
        self._rows.clear()

    async def _statement(self, operation: Any, parameters: Any, many: bool) -> None:
        connection: InlineConnection = self._adapt_connection  # type: ignore[assignment]
        if is_write(operation):
            await connection.enter_gate()
        try:
            outcome = await connection.run(lambda conn: _run(conn, operation, parameters, many))
        finally:
            connection.leave_gate_if_done()
        description, rows, self._rowcount, self._lastrowid = outcome
        self._description = description
        self._rows = collections.deque(rows)

    async def _execute_async(self, operation: Any, parameters: Any) -> None:
        await self._statement(operation, parameters, many=False)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> None:
        await self._statement(operation, seq_of_parameters, many=True)

    def setinputsizes(self, *inputsizes: Any) -> None:
        return None  # sqlite3 ignores input sizes

    def nextset(self) -> None:
        raise NotImplementedError("SQLite returns one result set per statement")


class InlineConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ("_dbapi", "_gate", "_holding")
    _cursor_cls = InlineCursor  # type: ignore[assignment]

    def __init__(self, dbapi: InlineDBAPI, connection: AsyncIODBAPIConnection) -> None:
        super().__init__(dbapi, connection)
        self._dbapi = dbapi
        self._gate = dbapi.gate
        self._holding: asyncio.Lock | None = None

    @property
    def _sqlite(self) -> sqlite3.Connection:
        return self._connection._conn  # type: ignore[no-any-return]

    async def run(self, call: Callable[[sqlite3.Connection], T]) -> T:
        """`call` on the event loop; if another process holds the lock, on aiosqlite's thread,
        waiting for it there."""
        conn = self._sqlite
        try:
            return call(conn)
        except sqlite3.OperationalError as error:
            if not _is_busy(error):
                raise
        self._dbapi.lock_waits += 1
        async with self._execute_mutex:
            waited: T = await self._connection._execute(_waiting, conn, lambda: call(conn))
            return waited

    async def enter_gate(self) -> None:
        if self._holding is None:
            self._holding = await self._gate.enter()

    def leave_gate_if_done(self) -> None:
        """Leave the gate once the transaction is over (an autocommit statement, a failed
        first write): SQLite holds no lock for us then."""
        if self._holding is not None and not self._sqlite.in_transaction:
            self._leave_gate()

    def _leave_gate(self) -> None:
        holding, self._holding = self._holding, None
        if holding is not None:
            holding.release()

    def _end(self, call: Callable[[sqlite3.Connection], None]) -> None:
        try:
            if self._connection._connection is None:
                return  # closed already (as the stock adapter, nothing to end)
            await_(self.run(call))
        except Exception as error:
            self._handle_exception(error)
        finally:
            self._leave_gate()

    def commit(self) -> None:
        self._end(sqlite3.Connection.commit)

    def rollback(self) -> None:
        self._end(sqlite3.Connection.rollback)

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._leave_gate()

    def terminate(self) -> None:
        # SQLAlchemy terminates a connection it invalidates (a task cancelled mid-statement,
        # say) without a rollback: its transaction is gone, so is its turn.
        try:
            super().terminate()
        finally:
            self._leave_gate()


class InlineDBAPI(AsyncAdapt_aiosqlite_dbapi):
    def __init__(self) -> None:
        super().__init__(aiosqlite, sqlite3)
        self.gate = WriteGate()
        # Statements that found the lock taken by another process and waited on the thread.
        self.lock_waits = 0

    def connect(self, *arg: Any, **kw: Any) -> InlineConnection:
        return InlineConnection(self, super().connect(*arg, **kw)._connection)


def dbapi() -> InlineDBAPI:
    """The DB-API module to build a `sqlite+aiosqlite` engine with (`module=`)."""
    return InlineDBAPI()
