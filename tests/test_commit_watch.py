"""Commits of other processes wake the worker (storage.commit_watch): on SQLite seen in the
file's data_version, on PostgreSQL announced with NOTIFY and heard by a listener."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from gateway.group_commit import GroupCommitter
from storage.commit_watch import announce, listen_for_commits, sqlite_file, watch_commits
from tests.test_group_commit import _message, _owner

INTERVAL = 0.005


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite+aiosqlite:///var/x.sqlite3", Path("var/x.sqlite3")),
        ("sqlite+aiosqlite:////abs/x.sqlite3", Path("/abs/x.sqlite3")),
        ("sqlite+aiosqlite://", None),
        ("sqlite+aiosqlite:///:memory:", None),
        ("postgresql+asyncpg://u:p@h/db", None),
    ],
)
def test_only_a_sqlite_file_is_watched(url: str, path: Path | None) -> None:
    assert sqlite_file(url) == path


async def test_another_connections_commit_is_heard_and_reads_are_not(tmp_path: Path) -> None:
    path = tmp_path / "w.sqlite3"
    writer = sqlite3.connect(path)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("CREATE TABLE t (x INTEGER)")
    writer.commit()
    heard = asyncio.Event()
    count = 0

    def on_commit() -> None:
        nonlocal count
        count += 1
        heard.set()

    stop = asyncio.Event()
    task = asyncio.create_task(watch_commits(path, on_commit, stop, interval=INTERVAL))
    try:
        # Reads change nothing: a few dozen looks hear no commit.
        for _ in range(5):
            writer.execute("SELECT count(*) FROM t").fetchall()
            await asyncio.sleep(INTERVAL * 4)  # not a wait for a condition: time for looks
        assert count == 0
        writer.execute("INSERT INTO t VALUES (1)")
        writer.commit()
        await asyncio.wait_for(heard.wait(), 5)
        assert count == 1
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
        writer.close()


async def test_a_missing_file_is_not_created(tmp_path: Path) -> None:
    with pytest.raises(sqlite3.OperationalError):
        await watch_commits(tmp_path / "absent.sqlite3", lambda: None, asyncio.Event())
    assert not (tmp_path / "absent.sqlite3").exists()


# --- PostgreSQL: an api process announces its commits, the all process listens ---------------

on_postgresql = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


class Heard:
    """Counts `on_commit()` calls; waits for the count to reach a number."""

    def __init__(self) -> None:
        self.count = 0
        self._changed = asyncio.Condition()

    def __call__(self) -> None:
        self.count += 1
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def reach(self, count: int, within: float = 10) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: self.count >= count), within)


@contextlib.asynccontextmanager
async def listening(engine: AsyncEngine) -> AsyncIterator[Heard]:
    """A listener on `engine`'s database for the block, counting what it hears."""
    heard, stop = Heard(), asyncio.Event()
    task = asyncio.create_task(listen_for_commits(engine, heard, stop, reconnect_after=0.05))
    try:
        await heard.reach(1)  # on listening it reports once: what came while nobody listened
        yield heard
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


@on_postgresql
async def test_an_announced_group_commit_is_heard(
    engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    user_id, token_id = await _owner(sessionmaker)
    async with listening(engine) as heard:
        await GroupCommitter(sessionmaker, announce=True).commit(_message(user_id, token_id))
        await heard.reach(2)


@on_postgresql
@pytest.mark.parametrize("announce", [False, True])
async def test_a_group_commit_announces_once_per_transaction_when_asked(
    engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession], announce: bool
) -> None:
    user_id, token_id = await _owner(sessionmaker)
    statements: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", note)
    committer = GroupCommitter(sessionmaker, announce=announce)
    await asyncio.gather(*(committer.commit(_message(user_id, token_id)) for _ in range(50)))
    notifies = [s for s in statements if "pg_notify" in s]
    assert len(notifies) == (committer.commits if announce else 0)
    assert committer.commits < 50  # several rows a transaction, one announcement each


@on_postgresql
async def test_a_lost_listening_connection_is_replaced(
    engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with listening(engine) as heard:
        async with sessionmaker() as session:
            # The database drops the listener's connection (a restart, an administrator).
            ended = await session.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE query LIKE 'LISTEN %' AND datname = current_database() "
                    "AND pid <> pg_backend_pid()"
                )
            )
        assert ended == 1
        await heard.reach(2)  # listening again: it reports what it may have missed
        async with sessionmaker() as session:
            await announce(session)
            await session.commit()
        await heard.reach(3)


async def _channels_listened_to_in_pool(engine: AsyncEngine) -> list[int]:
    """For each connection waiting in the pool, how many channels it still listens to."""
    counts = []
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(engine.pool.checkedin()):  # type: ignore[attr-defined]
            connection = await stack.enter_async_context(engine.connect())
            raw = (await connection.get_raw_connection()).driver_connection
            assert raw is not None
            counts.append(await raw.fetchval("SELECT count(*) FROM pg_listening_channels()"))
    return counts


@on_postgresql
async def test_a_stopped_listener_hands_its_connection_back_clean(engine: AsyncEngine) -> None:
    async with listening(engine):
        assert engine.pool.checkedout() == 1  # type: ignore[attr-defined]
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    assert await _channels_listened_to_in_pool(engine) == [0]


@on_postgresql
async def test_a_cancelled_listener_never_hands_back_a_listening_connection(
    engine: AsyncEngine,
) -> None:
    heard, stop = Heard(), asyncio.Event()
    task = asyncio.create_task(listen_for_commits(engine, heard, stop))
    await heard.reach(1)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    # Dropped, not pooled: whatever the pool holds now is a fresh connection.
    assert not any(await _channels_listened_to_in_pool(engine))


@pytest.mark.parametrize(
    ("url", "watch"),
    [
        ("postgresql+asyncpg://u:p@h/db", "listen_for_commits"),
        ("sqlite+aiosqlite:///var/x.sqlite3", "watch_commits"),
        ("sqlite+aiosqlite://", None),
    ],
)
def test_the_all_process_watches_as_its_database_allows(url: str, watch: str | None) -> None:
    from gateway.runtime import commit_watch_for

    engine = create_async_engine(url)  # never connects here
    coroutine = commit_watch_for(url, engine, lambda: None, asyncio.Event())
    try:
        assert (coroutine.__name__ if coroutine is not None else None) == watch
    finally:
        if coroutine is not None:
            coroutine.close()
