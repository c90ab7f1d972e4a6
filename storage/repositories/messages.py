"""Accepted messages as the API and the bot see them (the worker's queries are in outbox)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, delete, exists, func, not_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased, selectinload

from storage.enums import Category, MessageStatus, Priority
from storage.models import Message
from storage.repositories import core


@dataclass(frozen=True, slots=True)
class NewMessage:
    """An accepted message, as `insert_new` writes it. Not an ORM object: building one through
    the ORM's instrumented constructor and flushing it through the unit of work was a sixth of
    the CPU of a POST /send (py-spy during bench/ingress.py)."""

    id: str
    sender_token_id: int | None
    recipient_id: int
    category: Category
    priority: Priority
    status: MessageStatus
    encrypted_content: bytes | None
    failure_reason: str | None
    channels: list[str]
    idempotency_key_hash: str | None
    created_at: datetime
    next_attempt_at: datetime
    retention_expires_at: datetime

    def row(self) -> dict[str, Any]:
        """The columns to insert: these fields, and the counters a new message starts at."""
        return {name: getattr(self, name) for name in _NEW_FIELDS} | _NEW_COUNTERS


_NEW_FIELDS = tuple(f.name for f in fields(NewMessage))
_NEW_COUNTERS = {"attempt_count": 0, "channel_index": 0}


_INSERT = core.insert_of(Message)


async def insert_new(session: AsyncSession, messages: Sequence[NewMessage]) -> None:
    """Insert accepted messages in one statement (an executemany)."""
    await core.insert_rows(session, _INSERT, [message.row() for message in messages])


async def release_idempotency_key(session: AsyncSession, message_id: str) -> None:
    """Let a new message take this one's idempotency key. The message itself goes on as it
    is: it may be on its way this moment, or inside a digest being sent; the retention purge
    deletes it when it may (storage.repositories.retention)."""
    await session.execute(
        update(Message).where(Message.id == message_id).values(idempotency_key_hash=None),
        execution_options={"synchronize_session": False},
    )


async def by_idempotency_key(session: AsyncSession, token_id: int, key_hash: str) -> Message | None:
    result: Message | None = await session.scalar(
        select(Message).where(
            Message.sender_token_id == token_id, Message.idempotency_key_hash == key_hash
        )
    )
    return result


async def sent_by(session: AsyncSession, message_id: str, token_id: int) -> Message | None:
    """The message if this token sent it (others get None: senders see only their own)."""
    result: Message | None = await session.scalar(
        select(Message)
        .where(Message.id == message_id, Message.sender_token_id == token_id)
        .options(selectinload(Message.attempts))
    )
    return result


async def status_counts(session: AsyncSession, recipient_id: int) -> dict[MessageStatus, int]:
    """The person's messages by status; a digest counts as the messages it carries."""
    carried = aliased(Message)
    is_carrier = exists().where(carried.carried_by == Message.id)
    rows = await session.execute(
        select(Message.status, func.count())
        .where(Message.recipient_id == recipient_id, ~is_carrier)
        .group_by(Message.status)
    )
    return {status: count for status, count in rows}


async def queue_depth(session: AsyncSession) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(Message)
        .where(
            Message.status.in_((MessageStatus.QUEUED, MessageStatus.SENDING)),
            # Carried messages go out inside their digest, which is counted itself.
            Message.carried_by.is_(None),
        )
    )
    return int(count or 0)


async def erase_sent_by(
    session: AsyncSession, message_id: str, token_id: int, now: datetime, carried_by: str | None
) -> bool:
    """Delete the record if this token sent it, no worker is sending it right now and it is
    still carried by `carried_by` (what the caller read): a message folded into a digest since
    has its content on the way out there, so erasing the record alone would not stop it."""
    same_carrier = (
        Message.carried_by.is_(None) if carried_by is None else Message.carried_by == carried_by
    )
    result = await session.execute(
        delete(Message).where(
            Message.id == message_id,
            Message.sender_token_id == token_id,
            not_(Message.being_sent(now)),
            same_carrier,
        ),
        execution_options={"synchronize_session": False},
    )
    return cast("CursorResult[Any]", result).rowcount == 1


async def undelivered(session: AsyncSession, message_id: str) -> bool:
    """Whether the message is still on its way (queued, held or being sent)."""
    status = await session.scalar(select(Message.status).where(Message.id == message_id))
    return status in (MessageStatus.QUEUED, MessageStatus.DEFERRED, MessageStatus.SENDING)


async def with_content(session: AsyncSession, message_ids: Collection[str]) -> set[str]:
    """Those of these messages that still exist with their content (not erased, not settled)."""
    if not message_ids:
        return set()
    rows = await session.scalars(
        select(Message.id).where(
            Message.id.in_(list(message_ids)), Message.encrypted_content.is_not(None)
        )
    )
    return set(rows)
