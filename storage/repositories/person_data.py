"""Everything stored about one person, for /export, and erasing it all, for /erase.

Every person-owned table cascades from `users` (ON DELETE CASCADE in the models and the
migrations), so erasure is one DELETE of the person's row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, delete, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from storage.models import ApiToken, AuditEntry, Message, TelegramCopy, User, UserPreferences


async def preferences_of(session: AsyncSession, user_id: int) -> UserPreferences | None:
    """The stored row, or None if the person never changed a preference (nothing created)."""
    return await session.get(UserPreferences, user_id)


async def tokens_of(session: AsyncSession, user_id: int) -> list[ApiToken]:
    """All of the person's tokens, revoked ones included, oldest first."""
    rows = await session.scalars(
        select(ApiToken)
        .where(ApiToken.owner_id == user_id)
        .order_by(ApiToken.created_at, ApiToken.id)
    )
    return list(rows)


async def messages_of(session: AsyncSession, user_id: int) -> list[Message]:
    """The message records held for the person as recipient, with their attempts."""
    rows = await session.scalars(
        select(Message)
        .where(Message.recipient_id == user_id)
        .options(selectinload(Message.attempts))
        .order_by(Message.created_at, Message.id)
    )
    return list(rows)


async def deletable_copies(
    session: AsyncSession, user_id: int, sent_after: datetime, *, scheduled_only: bool = False
) -> dict[int, list[int]]:
    """Telegram message ids of the bot's messages in the person's logs that are younger than
    `sent_after` (Telegram's deletion window), by chat id; with `scheduled_only`, only those
    due to be deleted anyway (self-destruct, unread ephemeral)."""
    query = select(TelegramCopy.chat_id, TelegramCopy.telegram_message_id).where(
        TelegramCopy.user_id == user_id, TelegramCopy.sent_at > sent_after
    )
    if scheduled_only:
        query = query.where(TelegramCopy.delete_at.is_not(None))
    rows = await session.execute(
        query.order_by(TelegramCopy.chat_id, TelegramCopy.telegram_message_id)
    )
    by_chat: dict[int, list[int]] = {}
    for chat_id, message_id in rows:
        by_chat.setdefault(chat_id, []).append(message_id)
    return by_chat


async def count_copies(session: AsyncSession, user_id: int) -> int:
    """How many of the bot's messages in the person's logs are recorded, deletable or not."""
    count = await session.scalar(
        select(func.count()).select_from(TelegramCopy).where(TelegramCopy.user_id == user_id)
    )
    return int(count or 0)


async def being_sent(session: AsyncSession, user_id: int, now: datetime) -> bool:
    """Whether a worker holds a live lease on a message to the person (erasing now would race
    a send whose result could not be recorded)."""
    found = await session.scalar(
        select(Message.id).where(Message.recipient_id == user_id, Message.being_sent(now)).limit(1)
    )
    return found is not None


async def erase(
    session: AsyncSession,
    user_id: int,
    *,
    unless_being_sent_at: datetime | None = None,
    unless_sent_since: datetime | None = None,
) -> bool:
    """Delete the person's row and, by cascade, every row that belongs to them; False if they
    were already gone. Messages sent with their tokens to others lose only the token link.

    The bot deletes its Telegram messages in the person's log first (seconds), and a worker
    may claim and send a message to them meanwhile: into the log of a person being forgotten,
    its record then erased with them, so never deleted. So the DELETE itself can refuse (False,
    nothing deleted): with `unless_being_sent_at` (now) while a worker holds a live lease on a
    message to them (`being_sent`), with `unless_sent_since` if the bot recorded a message in
    their log sent since then (the caller's check for a message being sent, before it listed
    what to delete: a send's record is committed a little after the send)."""
    statement = delete(User).where(User.id == user_id)
    if unless_being_sent_at is not None:
        statement = statement.where(
            ~exists().where(
                Message.recipient_id == user_id, Message.being_sent(unless_being_sent_at)
            )
        )
    if unless_sent_since is not None:
        statement = statement.where(
            ~exists().where(
                TelegramCopy.user_id == user_id, TelegramCopy.sent_at >= unless_sent_since
            )
        )
    result = await session.execute(statement, execution_options={"synchronize_session": False})
    # Objects loaded before now describe rows that no longer exist: flushing a change to one
    # of them later would fail, so the session forgets them all.
    session.expunge_all()
    return cast("CursorResult[Any]", result).rowcount > 0


async def audit_entries_of(session: AsyncSession, user_id: int) -> list[AuditEntry]:
    rows = await session.scalars(
        select(AuditEntry)
        .where(AuditEntry.user_id == user_id)
        .order_by(AuditEntry.delivered_at, AuditEntry.id)
    )
    return list(rows)
