"""Commits of other connections to a SQLite file wake the worker (storage.commit_watch)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from storage.commit_watch import sqlite_file, watch_commits

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
