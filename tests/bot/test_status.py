"""/status: the linked group, its topics and message counts."""

from __future__ import annotations

import uuid
from datetime import timedelta

from gateway.topics import CREATED_TOPICS
from storage.enums import Category, MessageStatus, Priority
from storage.models import Message
from storage.repositories import copies, users
from storage.types import utcnow
from tests.bot.conftest import RunningBot, has_text


async def add_messages(running: RunningBot, telegram_id: int, *statuses: MessageStatus) -> None:
    async with running.sessionmaker() as session, session.begin():
        user = await users.by_telegram_id(session, telegram_id)
        assert user is not None
        for status in statuses:
            session.add(
                Message(
                    id=str(uuid.uuid4()),
                    recipient_id=user.id,
                    category=Category.SYSTEM,
                    priority=Priority.NORMAL,
                    status=status,
                    retention_expires_at=utcnow() + timedelta(days=1),
                )
            )


async def test_status_without_a_log(running: RunningBot) -> None:
    user_id = await running.register("Ada")
    reply = await running.reply_after(user_id, user_id, "/status", lambda m: True)
    assert "no personal log yet" in (reply.text or "")


async def test_status_shows_group_topics_and_counts(running: RunningBot) -> None:
    user_id = await running.register("Ada")
    group_id = await running.forum_log(user_id, "Ada <3 logs")
    queued, delivered = MessageStatus.QUEUED, MessageStatus.DELIVERED
    await add_messages(running, user_id, queued, queued, MessageStatus.DEFERRED, delivered)

    reply = await running.reply_after(user_id, user_id, "/status", lambda m: has_text(m, "Group"))
    text = reply.text or ""
    assert "Ada <3 logs" in text  # the title was escaped, so it arrives intact
    assert str(group_id) in text
    assert "linked ✅" in text
    for spec in CREATED_TOPICS:
        assert spec.name in text
    assert "General" in text
    assert "3 queued, 1 delivered" in text


async def test_status_after_the_bot_was_removed_shows_the_id(running: RunningBot) -> None:
    user_id = await running.register("Ada")
    group_id = await running.forum_log(user_id, "Ada's log")
    await running.control.set_bot_membership(group_id, by_id=user_id, status="left")
    await running.control.wait_for_bot_message(user_id, lambda m: has_text(m, "removed"))
    await running.settled()

    reply = await running.reply_after(user_id, user_id, "/status", lambda m: has_text(m, "Group"))
    text = reply.text or ""
    assert "Ada's log" not in text  # getChat fails once the bot is out: the id is shown
    assert str(group_id) in text
    assert "unlinked" in text
    assert "0 queued, 0 delivered" in text


async def test_status_shows_pending_and_overdue_deletions(running: RunningBot) -> None:
    user_id = await running.register("Ada")
    group_id = await running.forum_log(user_id, "Ada's log")
    reply = await running.reply_after(user_id, user_id, "/status", lambda m: has_text(m, "Group"))
    assert "Scheduled deletions" not in (reply.text or "")

    now = utcnow()
    async with running.sessionmaker() as session, session.begin():
        user = await users.by_telegram_id(session, user_id)
        assert user is not None
        for telegram_id, due in ((101, now + timedelta(hours=1)), (102, now - timedelta(hours=1))):
            copies.add(
                session,
                user_id=user.id,
                message_id=None,
                chat_id=group_id,
                telegram_ids=[telegram_id],
                sent_at=now,
                delete_at=due,
            )
        copies.add(  # kept for /erase, nothing scheduled: not counted
            session,
            user_id=user.id,
            message_id=None,
            chat_id=group_id,
            telegram_ids=[103],
            sent_at=now,
            delete_at=None,
        )
    reply = await running.reply_after(user_id, user_id, "/status", lambda m: has_text(m, "Group"))
    assert "🗑 Scheduled deletions: 2 pending, 1 overdue (the oldest by 60 min" in (reply.text or "")
