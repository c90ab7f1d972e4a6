"""The models on a real migrated SQLite database: constraints, cascades, UTC datetimes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.enums import AttemptOutcome, Category, Channel, MessageStatus, Priority
from storage.models import (
    ApiToken,
    DeliveryAttempt,
    LogGroup,
    Message,
    Topic,
    User,
    UserPreferences,
)


async def _person(session: AsyncSession, telegram_id: int = 1001) -> User:
    user = User(telegram_id=telegram_id, language="en")
    session.add(user)
    await session.flush()
    return user


async def _message(session: AsyncSession, user: User, token: ApiToken | None) -> Message:
    msg = Message(
        id=f"m-{user.id}-{datetime.now(UTC).timestamp()}",
        sender_token_id=token.id if token else None,
        recipient_id=user.id,
        category=Category.AUTH,
        priority=Priority.HIGH,
        status=MessageStatus.QUEUED,
        encrypted_content=b"\x00ciphertext",
        idempotency_key_hash="k1",
        retention_expires_at=datetime.now(UTC) + timedelta(days=1),
    )
    session.add(msg)
    await session.flush()
    return msg


async def test_fk_pragma_is_on(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with sessionmaker() as session:
        assert (await session.execute(text("PRAGMA foreign_keys"))).scalar_one() == 1


async def test_erasing_a_person_cascades_to_everything(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as session, session.begin():
        user = await _person(session)
        session.add(UserPreferences(user_id=user.id, quiet_mode="defer"))
        group = LogGroup(chat_id=-1001234, owner_id=user.id, is_forum=True)
        session.add(group)
        await session.flush()
        session.add(Topic(group_id=group.id, category=Category.AUTH, message_thread_id=7, name="x"))
        token = ApiToken(owner_id=user.id, token_hash="h" * 64, prefix="lgp_abcd", scopes=["send"])
        session.add(token)
        await session.flush()
        msg = await _message(session, user, token)
        session.add(
            DeliveryAttempt(
                message_id=msg.id,
                channel=Channel.TELEGRAM,
                attempt=1,
                outcome=AttemptOutcome.DELIVERED,
                external_id="42",
            )
        )
    async with sessionmaker() as session, session.begin():
        await session.execute(text("DELETE FROM users WHERE telegram_id = 1001"))
    async with sessionmaker() as session:
        for model in (User, UserPreferences, LogGroup, Topic, ApiToken, Message, DeliveryAttempt):
            count = await session.scalar(select(func.count()).select_from(model))
            assert count == 0, model.__tablename__


async def test_idempotency_key_unique_per_token(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as session:
        user = await _person(session)
        token = ApiToken(owner_id=user.id, token_hash="a" * 64, prefix="lgp_a")
        session.add(token)
        await session.flush()
        await _message(session, user, token)
        with pytest.raises(IntegrityError):
            await _message(session, user, token)


async def test_one_log_group_per_person_and_topic_per_category(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as session:
        user = await _person(session)
        group = LogGroup(chat_id=-1001, owner_id=user.id)
        session.add(group)
        await session.flush()
        session.add(Topic(group_id=group.id, category=Category.GENERAL, name="General"))
        await session.flush()
        session.add(Topic(group_id=group.id, category=Category.GENERAL, name="again"))
        with pytest.raises(IntegrityError):
            await session.flush()
        await session.rollback()
    async with sessionmaker() as session:
        user = await _person(session, 2002)
        session.add_all(
            [LogGroup(chat_id=-1, owner_id=user.id), LogGroup(chat_id=-2, owner_id=user.id)]
        )
        with pytest.raises(IntegrityError):
            await session.flush()


async def test_datetimes_come_back_aware_utc(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as session, session.begin():
        user = await _person(session)
    async with sessionmaker() as session:
        loaded = await session.get(User, user.id)
        assert loaded is not None
        assert loaded.created_at.tzinfo is not None
        assert abs(loaded.created_at - datetime.now(UTC)) < timedelta(minutes=1)


async def test_naive_datetime_is_refused(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with sessionmaker() as session:
        session.add(User(telegram_id=5, created_at=datetime(2026, 1, 1)))
        with pytest.raises(Exception, match="naive datetime"):
            await session.flush()


async def test_unknown_enum_value_is_refused(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as session:
        user = await _person(session)
        msg = Message(
            id="bad",
            recipient_id=user.id,
            category="nonsense",  # type: ignore[arg-type]
            priority=Priority.LOW,
            status=MessageStatus.QUEUED,
            retention_expires_at=datetime.now(UTC),
        )
        session.add(msg)
        with pytest.raises(StatementError, match="nonsense"):
            await session.flush()
