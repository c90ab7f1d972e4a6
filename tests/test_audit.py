"""Audit lines: waiting while the log is unreachable, one notice per person once it is, content
only when the person chose it."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway import audit
from gateway.content_cipher import ContentCipher
from gateway.outbox_payload import OutboxPayload
from storage.enums import Category, Channel, MessageStatus, Priority
from storage.models import AuditEntry, LogGroup, Message, User, UserPreferences

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)  # 21:00 in Tokyo
MESSAGE_ID = "3f1c2a9e-0000-4000-8000-000000000001"


async def _person(
    sessionmaker: async_sessionmaker[AsyncSession], *, linked: bool, with_content: bool
) -> int:
    async with sessionmaker() as session, session.begin():
        user = User(telegram_id=int.from_bytes(os.urandom(4), "big"))
        session.add(user)
        await session.flush()
        session.add(UserPreferences(user_id=user.id, audit_with_content=with_content))
        session.add(
            LogGroup(
                chat_id=-(10**12) - user.id,
                owner_id=user.id,
                is_forum=True,
                unlinked_at=None if linked else NOW,
            )
        )
        return user.id


async def _record(
    sessionmaker: async_sessionmaker[AsyncSession], cipher: ContentCipher, user_id: int
) -> None:
    async with sessionmaker() as session, session.begin():
        session.add(  # the delivered message the line is about
            Message(
                id=MESSAGE_ID,
                recipient_id=user_id,
                category=Category.PAYMENT,
                priority=Priority.NORMAL,
                status=MessageStatus.DELIVERED,
                retention_expires_at=NOW + timedelta(days=1),
            )
        )
        await session.flush()
        await audit.record(
            session,
            cipher,
            user_id=user_id,
            message_id=MESSAGE_ID,
            channel=Channel.EMAIL,
            category=Category.PAYMENT,
            payload=OutboxPayload(kind="text", value="Paid 5 EUR\nsecond line"),
            at=NOW,
        )


async def _notices(
    sessionmaker: async_sessionmaker[AsyncSession], cipher: ContentCipher
) -> list[str]:
    async with sessionmaker() as session:
        rows = await session.scalars(select(Message).where(Message.id != MESSAGE_ID))
        texts = []
        for row in rows:
            assert row.category is Category.COMMUNICATION
            assert row.encrypted_content is not None
            texts.append(
                str(OutboxPayload.from_dict(cipher.open(row.id, row.encrypted_content)).value)
            )
        return texts


async def test_lines_wait_for_an_unlinked_log(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    cipher = ContentCipher(os.urandom(32))
    user_id = await _person(sessionmaker, linked=False, with_content=False)
    await _record(sessionmaker, cipher, user_id)
    async with sessionmaker() as session, session.begin():
        assert await audit.flush_ready(session, cipher, NOW) == 0
    async with sessionmaker() as session, session.begin():
        group = await session.scalar(select(LogGroup).where(LogGroup.owner_id == user_id))
        assert group is not None
        group.unlinked_at = None  # the bot is back
    async with sessionmaker() as session, session.begin():
        assert await audit.flush_ready(session, cipher, NOW) == 1
    [text] = await _notices(sessionmaker, cipher)
    assert "Delivered by email · payment · <code>3f1c2a9e-" in text
    assert "2026-11-24 21:00 JST" in text  # the person's time zone (default Asia/Tokyo)
    assert "Paid" not in text
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(AuditEntry)) == 0


async def test_content_only_when_the_person_chose_it(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    cipher = ContentCipher(os.urandom(32))
    user_id = await _person(sessionmaker, linked=True, with_content=True)
    await _record(sessionmaker, cipher, user_id)
    async with sessionmaker() as session:
        [entry] = await session.scalars(select(AuditEntry))
        assert entry.sealed_content is not None
        assert b"Paid" not in entry.sealed_content  # sealed, not plain
    async with sessionmaker() as session, session.begin():
        assert await audit.flush_ready(session, cipher, NOW) == 1
    [text] = await _notices(sessionmaker, cipher)
    assert "Paid 5 EUR\nsecond line" in text


async def test_a_waiting_line_goes_with_its_message(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    cipher = ContentCipher(os.urandom(32))
    user_id = await _person(sessionmaker, linked=False, with_content=True)
    await _record(sessionmaker, cipher, user_id)
    async with sessionmaker() as session, session.begin():  # erased, or past its retention
        message = await session.get(Message, MESSAGE_ID)
        await session.delete(message)
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(AuditEntry)) == 0
