"""The looks for due work run on every pass of the worker and the releaser: SQLite must answer
them from the due indexes (ix_messages_due_*), never by walking the table or every row that is
not carried (the history of delivered messages). EXPLAIN QUERY PLAN of the statements the
repositories emit, on a database migrated to head; the plans do not depend on the rows (no
ANALYZE is run). And the worker's looks read the first rows in index order whatever the
backlog, which SQLite's count of its own instructions shows. The statements that name their
messages by id (claiming, postponing, folding, releasing) look those up by primary key, never by
walking the due index for the rest of their conditions (`planner.by_key`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.delivery.coalesce import MAX_FOLD
from gateway.delivery.worker import BATCH_SIZE
from storage import migrate
from storage.engine import create_engine, create_sessionmaker
from storage.enums import Channel, MessageStatus
from storage.models import Message
from storage.repositories import deferred, messages, outbox
from storage.repositories.planner import by_key

NOW = datetime(2026, 11, 25, 7, 0, tzinfo=UTC)
Look = Callable[[AsyncSession], Awaitable[Any]]
# A range of a due index or of a person's queue, or a row found there read by its primary key.
ALLOWED = (
    "SEARCH messages USING INDEX ix_messages_due",
    "SEARCH messages USING INDEX ix_messages_waiting",
    "SEARCH messages USING INDEX sqlite_autoindex_messages_1 (id=?)",
)

LOOKS: dict[str, Look] = {
    "outbox.due": lambda s: outbox.due(s, NOW, BATCH_SIZE),
    "outbox.next_wakeup": outbox.next_wakeup,
    "deferred.due": lambda s: deferred.due(s, NOW, 100),
    "deferred.next_release": deferred.next_release,
    "messages.queue_depth": messages.queue_depth,
    "outbox.waiting_of": lambda s: outbox.waiting_of(s, 1, NOW, MAX_FOLD),
    # Once, when a worker starts; but then with whatever history the table holds.
    "outbox.held_chats": lambda s: outbox.held_chats(s, NOW),
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
                assert step.startswith(ALLOWED), (name, plan)


def _queue(path: Path, count: int, priority: str) -> None:
    """`count` messages due an hour ago, queued straight into the table (a raw connection does
    not enforce foreign keys, and only the rows matter here)."""
    due = "2026-11-25 06:00:00.000000"
    with sqlite3.connect(path) as raw:
        raw.executemany(
            "INSERT INTO messages (id, recipient_id, category, priority, status, created_at, "
            "retention_expires_at, next_attempt_at, attempt_count) "
            "VALUES (?, 1, 'general', ?, 'queued', ?, '2027-01-01', ?, 0)",
            [(f"{priority}-{count}-{n:08d}", priority, due, due) for n in range(count)],
        )


def _steps(path: Path, statement: str, parameters: Any) -> int:
    """How many thousand SQLite virtual-machine instructions `statement` took."""
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0  # go on

    raw = sqlite3.connect(path)
    try:
        raw.set_progress_handler(count, 1000)
        raw.execute(statement, parameters).fetchall()
        raw.rollback()  # a write measured (a claim) leaves the rows as they were, for the next
    finally:
        raw.close()
    return steps


@pytest.mark.parametrize("priority", ["normal", "urgent"])
@pytest.mark.parametrize("name", ["outbox.due", "outbox.waiting_of"])
async def test_the_worker_s_looks_do_not_grow_with_the_backlog(
    database: tuple[str, Path], name: str, priority: str
) -> None:
    """A burst faster than the worker folds it leaves thousands of messages due: each pass
    of the worker must still read only the first of them it takes (a pass's, a fold's), not
    sort them all (which grew with the backlog: 5.6 ms a pass with 16,000 due to find them, 24
    ms with 25,000 to fold)."""
    url, path = database
    [(statement, parameters)] = await _statements(url, LOOKS[name])
    _queue(path, 2 * BATCH_SIZE, priority)
    small = _steps(path, statement, parameters)
    _queue(path, 40 * BATCH_SIZE, priority)
    large = _steps(path, statement, parameters)
    assert small > 0
    assert large < 2 * small, (small, large)


LEASE = NOW + timedelta(seconds=60)
# Statements that name their messages by id, with `n` ids: each must search the primary key for
# them, whatever else it checks. (Without `by_key`, SQLite walked the due index's range of every
# queued message for the claim, for folding and for releasing deferred messages, once they named
# more than a few ids.)
BY_KEY: dict[str, Callable[[list[str]], Look]] = {
    "outbox.claim_many": lambda ids: lambda s: outbox.claim_many(s, ids, NOW, LEASE),
    "outbox.postpone": lambda ids: lambda s: outbox.postpone(s, ids, LEASE, NOW),
    "outbox.release": lambda ids: lambda s: outbox.release(s, ids, NOW, LEASE),
    "outbox.fold": lambda ids: lambda s: outbox.fold(s, ids, "carrier", NOW),
    "outbox.settle_delivered": lambda ids: (
        lambda s: outbox.settle_delivered(s, [(i, LEASE) for i in ids], NOW, Channel.TELEGRAM)
    ),
    "deferred.take": lambda ids: lambda s: deferred.take(s, ids, status="queued"),
}
BY_PRIMARY_KEY = "SEARCH messages USING INDEX sqlite_autoindex_messages_1 (id=?)"


@pytest.mark.parametrize("count", [1, 5, 100, 1000])
@pytest.mark.parametrize("name", sorted(BY_KEY))
async def test_statements_naming_messages_by_id_search_the_primary_key(
    database: tuple[str, Path], name: str, count: int
) -> None:
    url, path = database
    ids = [f"m-{n:08d}" for n in range(count)]
    [(statement, parameters)] = await _statements(url, BY_KEY[name](ids))
    with sqlite3.connect(path) as raw:
        plan = [row[3] for row in raw.execute("EXPLAIN QUERY PLAN " + statement, parameters)]
    outer = [step for step in plan if " messages " in f" {step} "]
    assert outer == [BY_PRIMARY_KEY], (name, plan)


async def test_a_claim_does_not_grow_with_the_backlog(database: tuple[str, Path]) -> None:
    """Claiming a chat's five messages ran 2,000 SQLite instructions with 200 queued and
    181,000 with 20,200 (it walked every queued message): a third of the worker's CPU in
    bench/pipeline.py. By primary key it is the same with any backlog."""
    url, path = database
    _queue(path, 200, "normal")
    ids = [f"normal-200-{n:08d}" for n in range(5)]
    [(statement, parameters)] = await _statements(url, BY_KEY["outbox.claim_many"](ids))
    small = _steps(path, statement, parameters)
    _queue(path, 20000, "normal")
    large = _steps(path, statement, parameters)
    assert large <= small + 1, (small, large)


def test_by_key_keeps_the_state_out_of_sqlite_s_choice_but_checks_it() -> None:
    """On SQLite the state is wrapped in likely(): still a condition of the WHERE."""
    statement = update(Message).where(
        *by_key(Message.id.in_(["a"]), Message.status == MessageStatus.QUEUED)
    )
    on_sqlite = str(statement.compile(dialect=sqlite.dialect()))
    on_postgresql = str(statement.compile(dialect=postgresql.dialect()))
    assert "likely(messages.status = ?) = 1" in on_sqlite, on_sqlite
    assert "likely" not in on_postgresql
    assert "(messages.status = %(status_1)s)" in on_postgresql, on_postgresql


def test_by_key_keeps_an_or_within_its_own_brackets() -> None:
    """`id IN (...) AND a OR b` would take every row where b holds, named or not: the claim's
    state is such an OR (queued and due, or a lease run out)."""
    statement = update(Message).where(
        *by_key(
            Message.id.in_(["a"]),
            (Message.status == MessageStatus.QUEUED) | (Message.status == MessageStatus.SENDING),
        )
    )
    on_postgresql = str(statement.compile(dialect=postgresql.dialect()))
    on_sqlite = str(statement.compile(dialect=sqlite.dialect()))
    assert "AND (messages.status = %(status_1)s OR messages.status = %(status_2)s)" in (
        on_postgresql
    ), on_postgresql
    assert "AND likely(messages.status = ? OR messages.status = ?) = 1" in on_sqlite, on_sqlite
