"""Queries for retention: which message records have outlived their deadline."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, delete, exists, func, not_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

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
    # A message a worker is sending right now waits for the outcome (its lease bounds that);
    # so does one carried by a digest on its way out (its content is in the digest, which
    # settles it either way).
    carrier = aliased(Message)
    in_pending_digest = exists().where(
        carrier.id == Message.carried_by, carrier.status.in_(UNDELIVERED)
    )
    return and_(
        Message.retention_expires_at <= now, not_(Message.being_sent(now)), not_(in_pending_digest)
    )


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


async def carried_from_senders(session: AsyncSession, carrier_ids: Sequence[str]) -> dict[str, int]:
    """How many messages someone sent each of these digests carries: they go with it (the
    foreign key cascades), so a digest dropped undelivered loses them too."""
    if not carrier_ids:
        return {}
    rows = await session.execute(
        select(Message.carried_by, func.count())
        .where(Message.carried_by.in_(carrier_ids), Message.sender_token_id.is_not(None))
        .group_by(Message.carried_by)
    )
    return {str(carrier): int(count) for carrier, count in rows.all()}


async def drop(session: AsyncSession, message_ids: Sequence[str]) -> set[str]:
    """Delete these records; the ids this statement deleted (another process may have been
    first with some: only these are ours to report)."""
    return set(await _delete(session, message_ids))


async def drop_expired(
    session: AsyncSession, message_ids: Sequence[str], now: datetime
) -> dict[str, bool]:
    """`drop` of these records if they are still past their deadline and free to go:
    `expired` read them, but a worker may have claimed one since (on PostgreSQL the next
    statement sees another transaction's commit). The ids deleted, each with whether it was
    still undelivered as it was deleted (it may have been delivered since the read)."""
    return await _delete(session, message_ids, _past(now))


async def _delete(
    session: AsyncSession, message_ids: Sequence[str], *where: ColumnElement[bool]
) -> dict[str, bool]:
    if not message_ids:
        return {}
    result = await session.execute(
        delete(Message)
        .where(Message.id.in_(message_ids), *where)
        .returning(Message.id, Message.status),
        execution_options={"synchronize_session": False},
    )
    return {message_id: status in UNDELIVERED for message_id, status in result.all()}


async def next_deadline(session: AsyncSession) -> datetime | None:
    return await session.scalar(select(func.min(Message.retention_expires_at)))
