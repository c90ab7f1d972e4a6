"""Another process holding a SQLite database's write lock, for tests of what waits for it."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager

from storage.commit_watch import sqlite_file


@contextmanager
def locked_by_another_process(url: str) -> Iterator[sqlite3.Connection]:
    """A plain sqlite3 connection holding the write lock of the database at `url`, as another
    process would, until the block ends (rolled back) or it is told COMMIT or ROLLBACK."""
    path = sqlite_file(url)
    assert path is not None, url
    with closing(sqlite3.connect(path, isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")
        yield other
