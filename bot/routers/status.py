"""/status: the person's personal log, its topics and how many messages wait or arrived."""

from __future__ import annotations

from datetime import datetime

from aiogram import Bot, F, Router
from aiogram.enums import ChatType
from aiogram.filters import Command
from aiogram.types import Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot import texts
from bot.linking import chat_title
from gateway.deletion import OVERDUE_GRACE
from storage.enums import MessageStatus
from storage.models import User
from storage.repositories import copies, groups, messages
from storage.types import utcnow

# Accepted but not yet delivered, from the person's point of view.
WAITING = (MessageStatus.QUEUED, MessageStatus.DEFERRED, MessageStatus.SENDING)


async def status(message: Message, session: AsyncSession, bot: Bot, user: User | None) -> None:
    if user is None:
        await message.answer(texts.NOT_REGISTERED)
        return
    group = await groups.group_of(session, user.id)
    if group is None:
        await message.answer(texts.NO_LOG)
        return
    counts = await messages.status_counts(session, user.id)
    now = utcnow()
    deletions = await copies.pending(session, now - OVERDUE_GRACE, user.id)
    await message.answer(
        texts.status(
            await chat_title(bot, group.chat_id),
            group.chat_id,
            group.topics,
            linked=group.unlinked_at is None,
            queued=sum(counts.get(s, 0) for s in WAITING),
            delivered=counts.get(MessageStatus.DELIVERED, 0),
            failed=counts.get(MessageStatus.FAILED, 0),
        )
        + deletion_line(deletions, now)
    )


def deletion_line(pending: copies.Pending, now: datetime) -> str:
    """Self-destruct and unread ephemeral messages still to delete from the log, if any."""
    if not pending.count:
        return ""
    line = f"\n🗑 Scheduled deletions: {pending.count} pending"
    if pending.overdue and pending.oldest_due is not None:
        late = max(int((now - pending.oldest_due).total_seconds() // 60), 1)
        line += (
            f", {pending.overdue} overdue (the oldest by {late} min: Telegram refused so far; "
            "I keep trying)"
        )
    return line


def create_router() -> Router:
    """A fresh Router: one instance can be attached to one Dispatcher only."""
    router = Router(name="status")
    router.message.register(status, Command("status"), F.chat.type == ChatType.PRIVATE)
    return router
