"""The write-ahead log is checkpointed on a thread of its own (storage.wal_checkpoints), and the
engine's connections leave it alone when told to."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest
from sqlalchemy import text

from storage.engine import create_engine
from storage.wal_checkpoints import Checkpoints, checkpoint_wal
from tests.waiting import eventually

ROWS = 200  # of a kilobyte each: some fifty pages of log
PAGE = 4096


@contextmanager
def writer(path: Path) -> Iterator[sqlite3.Connection]:
    """A connection that writes to the log and never checkpoints it itself. Held open: the last
    connection to close would checkpoint everything."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA wal_autocheckpoint=0")
    connection.execute("CREATE TABLE IF NOT EXISTS t (body BLOB)")
    try:
        yield connection
    finally:
        connection.close()


def write(connection: sqlite3.Connection, rows: int = ROWS) -> None:
    connection.executemany("INSERT INTO t VALUES (?)", [(b"x" * 1024,)] * rows)


@asynccontextmanager
async def checkpointing(path: Path, seen: Checkpoints) -> AsyncIterator[asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(checkpoint_wal(path, stop, interval=0.01, seen=seen))
    try:
        yield task
    finally:
        stop.set()
        async with asyncio.timeout(5):
            await task


async def test_a_checkpointer_copies_the_log_into_the_database_file(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    with writer(path) as connection:
        write(connection)
        before = path.stat().st_size
        # In WAL mode the database file is written only by checkpoints: none has run yet.
        assert before < ROWS * 1024
        seen = Checkpoints()
        async with checkpointing(path, seen):
            await eventually(
                lambda: seen.last is not None and seen.last.checkpointed >= ROWS * 1024 // PAGE,
                within=10,
                what="a checkpoint of the log",
            )
        assert seen.last is not None
        assert not seen.last.busy
        assert seen.last.checkpointed == seen.last.log_frames
        assert path.stat().st_size >= before + ROWS * 1024
        assert connection.execute("SELECT count(*) FROM t").fetchone() == (ROWS,)
        assert seen.failures == 0


async def test_a_reader_in_the_way_leaves_the_rest_to_a_later_pass(tmp_path: Path) -> None:
    # PASSIVE: a reader on an older snapshot is neither waited for nor blocked; what it may
    # still need stays in the log until a pass after it is done.
    path = tmp_path / "db.sqlite3"
    with writer(path) as connection:
        write(connection, 10)
        reader = sqlite3.connect(path, isolation_level=None)
        try:
            reader.execute("BEGIN")
            assert reader.execute("SELECT count(*) FROM t").fetchone() == (10,)  # its snapshot
            write(connection)
            seen = Checkpoints()
            async with checkpointing(path, seen):
                await eventually(
                    lambda: seen.last is not None and seen.last.log_frames > 0,
                    within=10,
                    what="a pass",
                )
                assert seen.last is not None
                assert seen.last.checkpointed < seen.last.log_frames
                reader.execute("COMMIT")
                await eventually(
                    lambda: (
                        seen.last is not None and seen.last.checkpointed == seen.last.log_frames
                    ),
                    within=10,
                    what="the rest of the log copied once the reader is done",
                )
        finally:
            reader.close()
        assert connection.execute("SELECT count(*) FROM t").fetchone() == (10 + ROWS,)


async def test_a_missing_database_is_told_once_and_never_created(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "gone.sqlite3"
    seen = Checkpoints()
    with caplog.at_level(logging.WARNING, logger="storage.wal_checkpoints"):
        async with checkpointing(path, seen) as task:
            await eventually(lambda: seen.failures >= 3, within=10, what="failed passes")
            assert not task.done()  # it goes on trying
    assert not path.exists()
    assert seen.passes == 0
    told = [r for r in caplog.records if r.name == "storage.wal_checkpoints"]
    assert [r.getMessage() for r in told] == [
        "checkpoint of the write-ahead log failed: OperationalError"
    ]


async def test_once_stopped_its_connection_is_closed(tmp_path: Path) -> None:
    # The writer's close is then the last one, which checkpoints and removes the log.
    path = tmp_path / "db.sqlite3"
    wal = tmp_path / "db.sqlite3-wal"
    with writer(path) as connection:
        write(connection)
        seen = Checkpoints()
        async with checkpointing(path, seen) as task:
            await eventually(lambda: seen.passes >= 1, within=10, what="a pass")
        assert task.done()
        assert task.exception() is None
        assert wal.exists()
    assert not wal.exists()


@pytest.mark.parametrize(("elsewhere", "expected"), [(False, 1000), (True, 0)])
async def test_an_engine_checkpoints_itself_unless_told_otherwise(
    migrated_url: str, elsewhere: bool, expected: int
) -> None:
    engine = create_engine(migrated_url, checkpoint_elsewhere=elsewhere)
    try:
        async with engine.connect() as connection:
            pages = (await connection.execute(text("PRAGMA wal_autocheckpoint"))).scalar()
        assert pages == expected
    finally:
        await engine.dispose()
