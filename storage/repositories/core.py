"""Core statements run in a session's transaction without the ORM's execution layer.

`AsyncSession.execute` prepares every statement for the ORM (execution options, events, the
compile state of ORM-enabled DML) even when it only inserts rows or updates columns. On the
statements every delivery and every accepted message runs, that cost more than SQLite took to
run them. These run on the session's connection instead: same transaction, same commit.

They do not autoflush: ORM changes pending in the session are not written first (the callers
flush where an order matters, as folding does). Only for tables whose writes no session event
needs to see: `gateway.recipient_cache` watches the session for writes to users, groups,
topics, contacts and preferences, and must keep seeing those (they go through
`session.execute`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVarTuple, overload

from sqlalchemy import CursorResult, Executable, Insert, Table, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.selectable import TypedReturnsRows

Params = Mapping[str, Any] | Sequence[Mapping[str, Any]]
_Ts = TypeVarTuple("_Ts")


@overload
async def execute(
    session: AsyncSession, statement: TypedReturnsRows[*_Ts], params: Params | None = None
) -> CursorResult[*_Ts]: ...


@overload
async def execute(
    session: AsyncSession, statement: Executable, params: Params | None = None
) -> CursorResult[*tuple[Any, ...]]: ...


async def execute(
    session: AsyncSession, statement: Executable, params: Params | None = None
) -> CursorResult[*tuple[Any, ...]]:
    """`statement` on the session's connection (beginning its transaction if need be)."""
    connection = await session.connection()
    return await connection.execute(statement, params)


def insert_of(model: type[Any]) -> Insert:
    """A Core INSERT into a mapped class's table (built once per table, by the caller)."""
    table: Table = model.__table__
    return insert(table)


async def insert_rows(
    session: AsyncSession, statement: Insert, rows: Sequence[Mapping[str, Any]]
) -> None:
    """`statement` for each of `rows`, in one executemany; nothing if there are none."""
    if rows:
        await execute(session, statement, list(rows))
