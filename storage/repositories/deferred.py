"""Queries for messages held for quiet hours (status `deferred`) and their release."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.enums import MessageStatus
from storage.models import Message
from storage.repositories.planner import by_key

_WAITING = (Message.status == MessageStatus.DEFERRED, Message.carried_by.is_(None))


async def due(session: AsyncSession, now: datetime, limit: int) -> list[Message]:
    """Held messages whose window has ended, a recipient's together, oldest first."""
    rows = await session.scalars(
        select(Message)
        .where(*_WAITING, Message.next_attempt_at <= now)
        .order_by(Message.recipient_id, Message.created_at, Message.id)
        .limit(limit)
    )
    return list(rows)


async def next_release(session: AsyncSession) -> datetime | None:
    """When the earliest held message is due, if any is held."""
    return await session.scalar(select(func.min(Message.next_attempt_at)).where(*_WAITING))


async def take(session: AsyncSession, message_ids: Sequence[str], **values: Any) -> bool:
    """Move held messages on (to the outbox or into a digest) if they are all still held:
    False means another releaser got there first and the caller must roll back."""
    result = await session.execute(
        update(Message).where(*by_key(Message.id.in_(message_ids), *_WAITING)).values(**values),
        execution_options={"synchronize_session": False},
    )
    return cast("CursorResult[Any]", result).rowcount == len(message_ids)
