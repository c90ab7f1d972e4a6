"""The bot's messages in personal logs (storage.models.TelegramCopy): recorded at delivery,
deleted when due, when asked, or forgotten once Telegram no longer lets the bot delete them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NotRequired, TypedDict, Unpack, cast

from sqlalchemy import ColumnElement, CursorResult, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import TelegramCopy
from storage.repositories import core


class CopyFields(TypedDict):
    """What is recorded of the parts of one message the bot sent."""

    user_id: int
    message_id: str | None
    chat_id: int
    telegram_ids: Sequence[int]
    sent_at: datetime
    delete_at: datetime | None
    # Links all parts of the message; default: the first of `telegram_ids`.
    first_part_id: NotRequired[int | None]


def rows(**fields: Unpack[CopyFields]) -> list[dict[str, Any]]:
    """The rows recording parts of one message, for `insert_rows`."""
    first_part_id = fields.get("first_part_id")
    first = first_part_id if first_part_id is not None else fields["telegram_ids"][0]
    return [
        {
            "user_id": fields["user_id"],
            "message_id": fields["message_id"],
            "chat_id": fields["chat_id"],
            "telegram_message_id": telegram_id,
            "first_part_id": first,
            "sent_at": fields["sent_at"],
            "delete_at": fields["delete_at"],
            "delete_attempts": 0,
        }
        for telegram_id in fields["telegram_ids"]
    ]


def add(session: AsyncSession, **fields: Unpack[CopyFields]) -> None:
    """Record parts of one message in the session (see `rows`)."""
    for row in rows(**fields):
        session.add(TelegramCopy(**row))


_INSERT = core.insert_of(TelegramCopy)


async def insert_rows(session: AsyncSession, copy_rows: Sequence[dict[str, Any]]) -> None:
    """Insert `rows` in one Core statement (the worker's path: no ORM flush per delivery)."""
    await core.insert_rows(session, _INSERT, copy_rows)


def _next_try() -> ColumnElement[datetime]:
    return func.coalesce(TelegramCopy.retry_at, TelegramCopy.delete_at)


async def due(session: AsyncSession, now: datetime, limit: int) -> list[TelegramCopy]:
    """Scheduled deletions whose time (or retry time) has come, a chat's together."""
    rows = await session.scalars(
        select(TelegramCopy)
        .where(TelegramCopy.delete_at.is_not(None), _next_try() <= now)
        .order_by(TelegramCopy.chat_id, TelegramCopy.telegram_message_id)
        .limit(limit)
    )
    return list(rows)


async def next_due(session: AsyncSession) -> datetime | None:
    return await session.scalar(
        select(func.min(_next_try())).where(TelegramCopy.delete_at.is_not(None))
    )


async def of_message(session: AsyncSession, message_id: str) -> list[TelegramCopy]:
    rows = await session.scalars(
        select(TelegramCopy)
        .where(TelegramCopy.message_id == message_id)
        .order_by(TelegramCopy.telegram_message_id)
    )
    return list(rows)


async def of_user(session: AsyncSession, user_id: int) -> list[TelegramCopy]:
    rows = await session.scalars(
        select(TelegramCopy)
        .where(TelegramCopy.user_id == user_id)
        .order_by(TelegramCopy.chat_id, TelegramCopy.telegram_message_id)
    )
    return list(rows)


async def with_siblings(
    session: AsyncSession, chat_id: int, telegram_message_id: int
) -> list[TelegramCopy]:
    """The copy of this Telegram message and the other parts of the same message."""
    first = await session.scalar(
        select(TelegramCopy.first_part_id).where(
            TelegramCopy.chat_id == chat_id,
            TelegramCopy.telegram_message_id == telegram_message_id,
        )
    )
    if first is None:
        return []
    rows = await session.scalars(
        select(TelegramCopy)
        .where(TelegramCopy.chat_id == chat_id, TelegramCopy.first_part_id == first)
        .order_by(TelegramCopy.telegram_message_id)
    )
    return list(rows)


async def drop(session: AsyncSession, copy_ids: Sequence[int]) -> None:
    if copy_ids:
        await session.execute(
            delete(TelegramCopy).where(TelegramCopy.id.in_(copy_ids)),
            execution_options={"synchronize_session": False},
        )


async def forget_undeletable(session: AsyncSession, sent_before: datetime) -> int:
    """Unscheduled copies the bot can no longer delete anyway: nothing to keep them for."""
    result = await session.execute(
        delete(TelegramCopy).where(
            TelegramCopy.delete_at.is_(None), TelegramCopy.sent_at < sent_before
        ),
        execution_options={"synchronize_session": False},
    )
    return cast("CursorResult[Any]", result).rowcount


@dataclass(frozen=True)
class Pending:
    count: int  # scheduled deletions not done yet
    overdue: int  # of those, due more than the grace before now
    oldest_due: datetime | None


async def pending(
    session: AsyncSession, overdue_before: datetime, user_id: int | None = None
) -> Pending:
    where: list[ColumnElement[bool]] = [TelegramCopy.delete_at.is_not(None)]
    if user_id is not None:
        where.append(TelegramCopy.user_id == user_id)
    row = (
        await session.execute(
            select(
                func.count(),
                func.count().filter(TelegramCopy.delete_at < overdue_before),
                func.min(TelegramCopy.delete_at),
            ).where(*where)
        )
    ).one()
    return Pending(int(row[0]), int(row[1]), row[2])


async def schedule(session: AsyncSession, copy_ids: Sequence[int], when: datetime) -> None:
    """Due for deletion at `when` (the scheduled deleter takes it from there)."""
    if copy_ids:
        await session.execute(
            update(TelegramCopy)
            .where(TelegramCopy.id.in_(copy_ids))
            .values(delete_at=when, retry_at=None),
            execution_options={"synchronize_session": False},
        )
