"""The looks for due work run on every pass of the worker and the releaser: SQLite must answer
them from ix_messages_due, never by walking the table or every row that is not carried (the
history of delivered messages). EXPLAIN QUERY PLAN of the statements the repositories emit,
on a database migrated to head; the plans do not depend on the rows (no ANALYZE is run)."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from storage import migrate
from storage.engine import create_engine, create_sessionmaker
from storage.repositories import deferred, messages, outbox

NOW = datetime(2026, 11, 25, 7, 0, tzinfo=UTC)
Look = Callable[[AsyncSession], Awaitable[Any]]

LOOKS: dict[str, Look] = {
    "outbox.due": lambda s: outbox.due(s, NOW, 100),
    "outbox.next_wakeup": outbox.next_wakeup,
    "deferred.due": lambda s: deferred.due(s, NOW, 100),
    "deferred.next_release": deferred.next_release,
    "messages.queue_depth": messages.queue_depth,
}


@pytest.fixture
def database(tmp_path: Path) -> tuple[str, Path]:
    path = tmp_path / "plans.sqlite3"
    url = f"sqlite+aiosqlite:///{path}"
    migrate.upgrade(url)
    return url, path


async def _statements(url: str, look: Look) -> list[tuple[str, Any]]:
    engine = create_engine(url)
    seen: list[tuple[str, Any]] = []

    def note(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", note)
    try:
        async with create_sessionmaker(engine)() as session:
            await look(session)
    finally:
        await engine.dispose()
    return [(s, p) for s, p in seen if "messages" in s]


@pytest.mark.parametrize("name", sorted(LOOKS))
async def test_looks_for_due_work_search_the_due_index(
    database: tuple[str, Path], name: str
) -> None:
    url, path = database
    statements = await _statements(url, LOOKS[name])
    assert statements, f"{name} ran no statement on messages"
    with sqlite3.connect(path) as raw:
        for statement, parameters in statements:
            plan = [row[3] for row in raw.execute("EXPLAIN QUERY PLAN " + statement, parameters)]
            on_messages = [step for step in plan if " messages " in f" {step} "]
            assert on_messages, plan
            for step in on_messages:
                assert step.startswith("SEARCH messages USING INDEX ix_messages_due"), (name, plan)
