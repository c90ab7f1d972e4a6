"""storage.sqlite_driver: statements on the event loop, writers queued through the write gate,
and a lock held by another process waited for off the loop. Real SQLite files throughout."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from contextlib import closing

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from storage import sqlite_driver
from storage.engine import create_engine
from storage.models import User
from tests.sqlite_lock import locked_by_another_process
from tests.waiting import eventually

pytestmark = pytest.mark.sqlite_only

WITHIN = 10.0  # seconds any step below may take before the test fails


def _user(n: int) -> User:
    return User(id=n, telegram_id=1000 + n)


async def _add_user(sessionmaker: async_sessionmaker[AsyncSession], n: int) -> None:
    async with sessionmaker() as session:
        session.add(_user(n))
        await session.commit()


async def _users(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    async with sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(User)) or 0)


def _dbapi(engine: AsyncEngine) -> sqlite_driver.InlineDBAPI:
    dbapi = engine.dialect.dbapi
    assert isinstance(dbapi, sqlite_driver.InlineDBAPI)
    return dbapi


def _path(migrated_url: str) -> str:
    return migrated_url.split("///", 1)[1]


async def test_the_engine_runs_sqlite_through_the_inline_driver(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        assert isinstance(raw.dbapi_connection, sqlite_driver.InlineConnection)
        assert (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar() == 0
        assert (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"


async def test_a_second_writer_waits_its_turn_and_then_writes(
    engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    gate = _dbapi(engine).gate
    async with sessionmaker() as first:
        first.add(_user(1))
        await first.flush()  # the first write: this transaction holds the gate

        waiting = asyncio.create_task(_add_user(sessionmaker, 2))
        # Queued on the gate, not failed with "database is locked".
        await eventually(lambda: gate.waiting == 1, within=WITHIN, what="the second writer")
        assert not waiting.done()
        await first.commit()
    await asyncio.wait_for(waiting, WITHIN)
    assert await _users(sessionmaker) == 2


async def test_readers_are_not_held_by_a_writer(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as writer:
        writer.add(_user(1))
        await writer.flush()
        # WAL: a reader sees the last commit while the write is under way.
        assert await asyncio.wait_for(_users(sessionmaker), WITHIN) == 0
        await writer.commit()
    assert await _users(sessionmaker) == 1


async def test_a_rollback_and_a_failed_write_let_the_next_writer_in(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as session:
        session.add(_user(1))
        await session.flush()
        await session.rollback()
    await _add_user(sessionmaker, 3)
    async with sessionmaker() as session:
        session.add(_user(3))  # the same primary key again
        with pytest.raises(IntegrityError):
            await session.flush()
        await session.rollback()
    await asyncio.wait_for(_add_user(sessionmaker, 4), WITHIN)
    assert await _users(sessionmaker) == 2


async def test_an_invalidated_connection_lets_the_next_writer_in(
    engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with engine.connect() as conn:
        await conn.exec_driver_sql(
            "INSERT INTO users (id, telegram_id, created_at) VALUES (7, 7, '2026')"
        )
        await conn.invalidate()  # as SQLAlchemy does when a task is cancelled mid-statement
    await asyncio.wait_for(_add_user(sessionmaker, 8), WITHIN)
    assert await _users(sessionmaker) == 1


async def test_an_autocommit_write_leaves_the_gate_by_itself(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await auto.exec_driver_sql(
            "INSERT INTO users (id, telegram_id, created_at) VALUES (5, 5, '2026')"
        )
        raw = await auto.get_raw_connection()
        assert isinstance(raw.dbapi_connection, sqlite_driver.InlineConnection)
        assert raw.dbapi_connection._holding is None
    async with engine.begin() as conn:
        await asyncio.wait_for(
            conn.exec_driver_sql(
                "INSERT INTO users (id, telegram_id, created_at) VALUES (6, 6, '2026')"
            ),
            WITHIN,
        )


async def test_a_lock_held_by_another_process_is_waited_for_off_the_event_loop(
    migrated_url: str, engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    dbapi = _dbapi(engine)
    with locked_by_another_process(migrated_url) as other:
        other.execute("INSERT INTO users (id, telegram_id, created_at) VALUES (900, 900, '2026')")
        writing = asyncio.create_task(_add_user(sessionmaker, 1))
        # The write meets the lock and waits on aiosqlite's thread; `eventually` itself runs
        # on the event loop, so it could not see that if the loop were the one waiting.
        await eventually(lambda: dbapi.lock_waits == 1, within=WITHIN, what="the lock wait")
        assert not writing.done()
        other.execute("COMMIT")
    await asyncio.wait_for(writing, WITHIN)
    assert await _users(sessionmaker) == 2  # the other process's row and ours


_INSERT = "INSERT INTO users (id, telegram_id, created_at) VALUES (1, 1, '2026')"


class _FakeTime:
    """The clock and sleep `_waiting` is given: sleeping moves the clock, and a hook runs."""

    def __init__(self, on_sleep: Callable[[int], None] = lambda n: None) -> None:
        self.now = 0.0
        self.pauses: list[float] = []
        self._on_sleep = on_sleep

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds
        self._on_sleep(len(self.pauses))


def test_on_the_thread_a_taken_lock_is_tried_again_after_short_growing_pauses(
    migrated_url: str,
) -> None:
    with (
        closing(sqlite3.connect(_path(migrated_url), isolation_level=None)) as conn,
        locked_by_another_process(migrated_url) as other,
    ):
        conn.execute("PRAGMA busy_timeout=0")

        def commit_at_the_third_pause(n: int) -> None:
            if n == 3:
                other.execute("COMMIT")

        time = _FakeTime(commit_at_the_third_pause)
        sqlite_driver._waiting(
            conn, lambda: conn.execute(_INSERT), sleep=time.sleep, clock=time.clock
        )
        assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 1
    first, growth = sqlite_driver.BUSY_FIRST_PAUSE, sqlite_driver.BUSY_PAUSE_GROWTH
    assert time.pauses == pytest.approx([first, first * growth, first * growth**2])
    assert first < 0.001  # shorter than SQLite's own first pause


def test_on_the_thread_the_pauses_stop_growing_and_the_wait_gives_up_after_half_a_minute(
    migrated_url: str,
) -> None:
    with (
        closing(sqlite3.connect(_path(migrated_url), isolation_level=None)) as conn,
        locked_by_another_process(migrated_url),
    ):
        conn.execute("PRAGMA busy_timeout=0")
        time = _FakeTime()
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            sqlite_driver._waiting(
                conn, lambda: conn.execute(_INSERT), sleep=time.sleep, clock=time.clock
            )
    assert max(time.pauses) == sqlite_driver.BUSY_LONGEST_PAUSE
    assert time.now >= sqlite_driver.BUSY_TIMEOUT_MS / 1000 == 30
    assert time.now < 30 + sqlite_driver.BUSY_LONGEST_PAUSE * 2


def test_on_the_thread_other_errors_are_raised_at_once(migrated_url: str) -> None:
    with closing(sqlite3.connect(_path(migrated_url), isolation_level=None)) as conn:
        conn.execute(_INSERT)
        time = _FakeTime()
        with pytest.raises(sqlite3.IntegrityError):
            sqlite_driver._waiting(
                conn, lambda: conn.execute(_INSERT), sleep=time.sleep, clock=time.clock
            )
        with pytest.raises(sqlite3.OperationalError, match="no such table"):
            sqlite_driver._waiting(
                conn,
                lambda: conn.execute("SELECT * FROM nowhere"),
                sleep=time.sleep,
                clock=time.clock,
            )
    assert time.pauses == []


async def test_the_gate_gives_up_after_its_timeout(
    sessionmaker: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_driver, "GATE_TIMEOUT", 0.05)
    async with sessionmaker() as holder:
        holder.add(_user(1))
        await holder.flush()
        async with sessionmaker() as late:
            late.add(_user(2))
            with pytest.raises(OperationalError, match="database is locked"):
                await late.flush()
            await late.rollback()
        await holder.commit()
    assert await _users(sessionmaker) == 1


async def test_engines_have_gates_of_their_own(migrated_url: str) -> None:
    first, second = create_engine(migrated_url), create_engine(migrated_url)
    try:
        gates: set[int] = set()
        for eng in (first, second):
            async with eng.connect() as conn:
                raw = await conn.get_raw_connection()
                assert isinstance(raw.dbapi_connection, sqlite_driver.InlineConnection)
                gates.add(id(raw.dbapi_connection._gate))
        assert len(gates) == 2
    finally:
        await first.dispose()
        await second.dispose()
