"""Checkpointing SQLite's write-ahead log off the event loop.

In WAL mode every commit is appended to the log, and the log is copied back into the database
file by a checkpoint: by default in the commit that takes the log past 1,000 pages, on the
connection that made it. Statements run on the event loop (`storage.sqlite_driver`), so that
commit held the loop for the copy and its fsync (synchronous=NORMAL syncs at checkpoints),
and every request in flight waited it out.

A `serve` process instead turns automatic checkpoints off on its engine's connections
(`storage.engine.create_engine(..., checkpoint_elsewhere=True)`) and runs `checkpoint_wal`:
every `INTERVAL`, a PASSIVE checkpoint on a connection and a thread of its own (sqlite3 lets go
of the GIL while SQLite copies and syncs), so the loop goes on meanwhile. PASSIVE is what the
automatic checkpoint does too: it neither waits for nor blocks readers and writers, and what a
reader still needs is copied at a later pass. Processes sharing a database each run one; a pass
that finds another's checkpoint under way (or a lock taken) does nothing, and the next one copies
what is left.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from storage.waiting import pause

log = logging.getLogger(__name__)

# Seconds between checkpoints: at thousands of commits a second the log takes a few megabytes
# in that time, which one pass copies in milliseconds.
INTERVAL = 0.25
# SQLite's result codes of a pass that gave way to another connection: not a fault.
_GAVE_WAY = frozenset({"SQLITE_BUSY", "SQLITE_LOCKED"})


@dataclass(frozen=True)
class Pass:
    """What one checkpoint found (SQLite's own three figures): whether something kept it from
    finishing, the frames in the log, and how many of them are in the database file now."""

    busy: bool
    log_frames: int
    checkpointed: int


@dataclass
class Checkpoints:
    """The passes so far (for tests and diagnostics)."""

    passes: int = 0
    failures: int = 0
    last: Pass | None = None


class _Checkpointer:
    """A connection for checkpoints only, used on one thread (the executor's)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._connection: sqlite3.Connection | None = None

    def checkpoint(self) -> Pass:
        if self._connection is None:
            # mode=rw: never creates the file. No busy handler: a pass that finds a lock taken
            # gives way rather than wait.
            self._connection = sqlite3.connect(f"file:{self._path}?mode=rw", uri=True, timeout=0)
        try:
            row = self._connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except Exception as exc:
            if getattr(exc, "sqlite_errorname", None) not in _GAVE_WAY:
                self.close()  # the file may have been replaced: open it afresh next time
            raise
        return Pass(busy=bool(row[0]), log_frames=int(row[1]), checkpointed=int(row[2]))

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


async def checkpoint_wal(
    path: Path,
    stop: asyncio.Event,
    *,
    interval: float = INTERVAL,
    seen: Checkpoints | None = None,
) -> None:
    """Checkpoint the log of the database at `path` every `interval` seconds until `stop`;
    counts the passes in `seen`."""
    seen = seen if seen is not None else Checkpoints()
    checkpointer = _Checkpointer(path)
    # One thread of its own: the connection is used only there, and closing it waits for a
    # pass under way (also when this task is cancelled mid-pass).
    thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wal-checkpoint")
    loop = asyncio.get_running_loop()
    failing = False  # warned once for a run of failures, not at every pass
    try:
        while not stop.is_set():
            await pause(stop, interval)
            if stop.is_set():
                break
            try:
                seen.last = await loop.run_in_executor(thread, checkpointer.checkpoint)
                seen.passes += 1
                failing = False
            except Exception as exc:
                # Nothing is lost by a pass that fails (the log keeps every commit), and the
                # next one tries again; a log that stays uncopied only grows, so it is told.
                seen.failures += 1
                if getattr(exc, "sqlite_errorname", None) in _GAVE_WAY:
                    log.debug("checkpoint gave way to another connection")
                elif not failing:
                    failing = True
                    log.warning("checkpoint of the write-ahead log failed: %s", type(exc).__name__)
    finally:
        closing = loop.run_in_executor(thread, checkpointer.close)  # after a pass under way
        thread.shutdown(wait=False)
        await closing
