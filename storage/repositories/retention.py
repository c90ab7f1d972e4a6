"""Queries for retention: which message records have outlived their deadline."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, delete, func, not_, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.enums import MessageStatus
from storage.models import Message

UNDELIVERED = (MessageStatus.QUEUED, MessageStatus.DEFERRED, MessageStatus.SENDING)


@dataclass(frozen=True)
class Expired:
    message_id: str
    recipient_id: int
    undelivered: bool
    from_sender: bool  # sent through the API (not one of the gateway's own notices or digests)


def _past(now: datetime) -> ColumnElement[bool]:
    # A message a worker is sending right now waits for the outcome (its lease bounds that).
    being_sent = and_(Message.status == MessageStatus.SENDING, Message.claimed_until >= now)
    return and_(Message.retention_expires_at <= now, not_(being_sent))


async def expired(session: AsyncSession, now: datetime, limit: int) -> list[Expired]:
    rows = await session.execute(
        select(Message.id, Message.recipient_id, Message.status, Message.sender_token_id)
        .where(_past(now))
        .order_by(Message.retention_expires_at)
        .limit(limit)
    )
    return [
        Expired(message_id, recipient_id, status in UNDELIVERED, sender is not None)
        for message_id, recipient_id, status, sender in rows
    ]


async def drop(session: AsyncSession, message_ids: Sequence[str]) -> None:
    if message_ids:
        await session.execute(
            delete(Message).where(Message.id.in_(message_ids)),
            execution_options={"synchronize_session": False},
        )


async def next_deadline(session: AsyncSession) -> datetime | None:
    return await session.scalar(select(func.min(Message.retention_expires_at)))
