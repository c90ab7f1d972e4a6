"""Finding every database row that refers to a person, generically over a MetaData.

`footprint` takes a snapshot of the person's rows: their `users` row and, following every
foreign key that deletes its row with the referenced one (anything but SET NULL / SET DEFAULT),
the rows that hang off it, transitively; plus the Telegram ids those rows hold (the person's
own id, their group's chat id). `references` then lists every row that still refers to that
footprint: a row of it still present, any foreign key column (SET NULL ones included) pointing
into it, or an id column (`telegram_id`, `chat_id`, `*_telegram_id`, `*_chat_id`) holding one of
its Telegram ids. A table added later is covered without touching this module.

Test databases are small: every table is read whole and the graph is walked in Python.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Connection, ForeignKey, MetaData, Table, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.models import Base

Row = Mapping[str, Any]
ROOT_TABLE = "users"


def is_id_column(column: Column[Any]) -> bool:
    name = column.name
    return name in ("telegram_id", "chat_id") or name.endswith(("_telegram_id", "_chat_id"))


def _owning(fk: ForeignKey) -> bool:
    """A row whose foreign key cascades (or restricts) belongs to the referenced row."""
    return (fk.ondelete or "").upper() not in ("SET NULL", "SET DEFAULT")


def _key(table: Table, row: Row) -> tuple[Any, ...]:
    return tuple(row[c.name] for c in table.primary_key.columns)


@dataclass(frozen=True)
class Footprint:
    rows: dict[str, dict[tuple[Any, ...], Row]]  # table name -> primary key -> row
    telegram_ids: frozenset[int]

    def count(self) -> int:
        return sum(len(rows) for rows in self.rows.values())

    def values(self, column: Column[Any]) -> set[Any]:
        """The values the person's rows hold in `column` (a referenced column)."""
        return {row[column.name] for row in self.rows.get(column.table.name, {}).values()}


def snapshot(conn: Connection, metadata: MetaData) -> dict[str, list[Row]]:
    return {
        name: [dict(r) for r in conn.execute(select(table)).mappings()]
        for name, table in metadata.tables.items()
    }


def footprint(conn: Connection, metadata: MetaData, user_id: int) -> Footprint:
    tables = snapshot(conn, metadata)
    root = metadata.tables[ROOT_TABLE]
    owned: dict[str, dict[tuple[Any, ...], Row]] = {
        ROOT_TABLE: {_key(root, r): r for r in tables[ROOT_TABLE] if r["id"] == user_id}
    }
    changed = True
    while changed:
        changed = False
        for name, table in metadata.tables.items():
            for fk in table.foreign_keys:
                if not _owning(fk):
                    continue
                targets = {
                    row[fk.column.name]
                    for row in owned.get(fk.column.table.name, {}).values()
                    if row[fk.column.name] is not None
                }
                for row in tables[name]:
                    if row[fk.parent.name] in targets:
                        mine = owned.setdefault(name, {})
                        if _key(table, row) not in mine:
                            mine[_key(table, row)] = row
                            changed = True
    telegram_ids = {
        row[column.name]
        for name, rows in owned.items()
        for column in metadata.tables[name].columns
        if is_id_column(column)
        for row in rows.values()
        if row[column.name] is not None
    }
    return Footprint(owned, frozenset(telegram_ids))


def references(conn: Connection, metadata: MetaData, person: Footprint) -> list[str]:
    """Every row that still refers to the person, described (ids only); [] when none."""
    found: list[str] = []
    for name, rows in snapshot(conn, metadata).items():
        table = metadata.tables[name]
        mine = person.rows.get(name, {})
        for row in rows:
            key = _key(table, row)
            if key in mine:
                found.append(f"{name} {key}: a row of the person")
            for fk in table.foreign_keys:
                value = row[fk.parent.name]
                if value is not None and value in person.values(fk.column):
                    found.append(f"{name} {key}: {fk.parent.name} -> {fk.target_fullname}")
            for column in table.columns:
                if is_id_column(column) and row[column.name] in person.telegram_ids:
                    found.append(f"{name} {key}: {column.name} is one of the person's ids")
    return found


async def footprint_of(
    sessionmaker: async_sessionmaker[AsyncSession],
    user_id: int,
    metadata: MetaData = Base.metadata,
) -> Footprint:
    async with sessionmaker() as session:
        return await session.run_sync(lambda s: footprint(s.connection(), metadata, user_id))


async def references_to(
    sessionmaker: async_sessionmaker[AsyncSession],
    person: Footprint,
    metadata: MetaData = Base.metadata,
) -> list[str]:
    async with sessionmaker() as session:
        return await session.run_sync(lambda s: references(s.connection(), metadata, person))
