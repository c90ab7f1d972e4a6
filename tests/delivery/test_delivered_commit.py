"""Deliveries that finish together are committed together (gateway.delivery.delivered_commit),
on both databases: one transaction for all, only where the claim still holds, and all or
nothing when the transaction fails."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.delivery.delivered_commit import DeliveredCommits, Delivery
from storage.enums import AttemptOutcome, Category, Channel, MessageStatus, Priority
from storage.models import DeliveryAttempt, Message, TelegramCopy, User
from storage.repositories import copies, outbox

pytestmark = pytest.mark.both_databases

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
LEASE = NOW + timedelta(seconds=60)


async def _claimed(sessionmaker: async_sessionmaker[AsyncSession], count: int) -> int:
    """A person with `count` messages (m0, m1, ...), claimed with the token LEASE; their id."""
    ids = [f"m{n}" for n in range(count)]
    async with sessionmaker() as session, session.begin():
        user = User(telegram_id=1001, language="en")
        session.add(user)
        await session.flush()
        for message_id in ids:
            session.add(
                Message(
                    id=message_id,
                    recipient_id=user.id,
                    category=Category.AUTH,
                    priority=Priority.NORMAL,
                    status=MessageStatus.QUEUED,
                    encrypted_content=b"\x00sealed",
                    next_attempt_at=NOW,
                    retention_expires_at=NOW + timedelta(days=1),
                )
            )
    async with sessionmaker() as session, session.begin():
        assert len(await outbox.claim_many(session, ids, NOW, LEASE)) == count
    return user.id


def _delivery(user_id: int, message_id: str, token: datetime = LEASE, part: int = 1) -> Delivery:
    attempt = outbox.attempt_row(
        message_id, Channel.TELEGRAM, 1, AttemptOutcome.DELIVERED, NOW, external_id=str(part)
    )
    copy = copies.rows(
        user_id=user_id,
        message_id=message_id,
        chat_id=-100,
        telegram_ids=[part],
        first_part_id=part,
        sent_at=NOW,
        delete_at=None,
    )
    return Delivery(message_id, token, [attempt], copy)


async def _rows(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> tuple[dict[str, Message], list[str], list[str]]:
    async with sessionmaker() as session:
        messages = {m.id: m for m in await session.scalars(select(Message))}
        attempts = list(await session.scalars(select(DeliveryAttempt.message_id)))
        kept = list(await session.scalars(select(TelegramCopy.message_id)))
    return messages, sorted(attempts), sorted(kept)


async def test_deliveries_finishing_together_share_one_commit(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    user_id = await _claimed(sessionmaker, 4)
    commits = DeliveredCommits(sessionmaker, lambda: NOW + timedelta(seconds=1))
    lost = LEASE + timedelta(seconds=1)  # m1's claim is another worker's now
    held = await asyncio.gather(
        commits.settle(_delivery(user_id, "m0", part=10)),
        commits.settle(_delivery(user_id, "m1", lost, part=11)),
        commits.settle(_delivery(user_id, "m2", part=12)),
    )
    assert held == [True, False, True]
    assert commits.commits == 1
    # A lone one later commits at once, in a transaction of its own.
    assert await commits.settle(_delivery(user_id, "m3", part=13))
    assert commits.commits == 2
    messages, attempts, kept = await _rows(sessionmaker)
    for message_id in ("m0", "m2", "m3"):
        message = messages[message_id]
        assert message.status is MessageStatus.DELIVERED
        assert message.delivered_at == NOW + timedelta(seconds=1)
        assert message.delivered_via is Channel.TELEGRAM
        assert (message.encrypted_content, message.claimed_until) == (None, None)
    # The lost claim's outcome and rows were dropped; its holder decides.
    assert messages["m1"].status is MessageStatus.SENDING
    assert messages["m1"].encrypted_content is not None
    assert attempts == kept == ["m0", "m2", "m3"]


async def test_a_delivery_the_database_refuses_fails_alone(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    user_id = await _claimed(sessionmaker, 3)
    commits = DeliveredCommits(sessionmaker, lambda: NOW)
    # The same Telegram message kept twice in one chat breaks a unique constraint: the batch
    # fails, and each delivery is committed on its own, so only the second one fails.
    outcomes = await asyncio.gather(
        commits.settle(_delivery(user_id, "m0", part=20)),
        commits.settle(_delivery(user_id, "m1", part=20)),
        commits.settle(_delivery(user_id, "m2", part=22)),
        return_exceptions=True,
    )
    assert [type(o) for o in outcomes] == [bool, IntegrityError, bool]
    assert [outcomes[0], outcomes[2]] == [True, True]
    messages, attempts, kept = await _rows(sessionmaker)
    assert messages["m1"].status is MessageStatus.SENDING
    assert messages["m1"].encrypted_content is not None
    assert attempts == kept == ["m0", "m2"]


async def test_a_database_refusing_every_statement_fails_every_delivery_and_writes_none(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    user_id = await _claimed(sessionmaker, 2)
    commits = DeliveredCommits(sessionmaker, lambda: NOW)
    async with sessionmaker() as session, session.begin():
        await session.execute(text("ALTER TABLE telegram_copies RENAME TO copies_away"))
    outcomes = await asyncio.gather(
        commits.settle(_delivery(user_id, "m0", part=30)),
        commits.settle(_delivery(user_id, "m1", part=31)),
        return_exceptions=True,
    )
    assert all(isinstance(o, DBAPIError) for o in outcomes), outcomes
    async with sessionmaker() as session, session.begin():
        await session.execute(text("ALTER TABLE copies_away RENAME TO telegram_copies"))
    messages, attempts, kept = await _rows(sessionmaker)
    # Each UPDATE was rolled back with its failed INSERT: both are still this worker's.
    assert {m.status for m in messages.values()} == {MessageStatus.SENDING}
    assert attempts == kept == []
    # The next batch is not held up by the failed one.
    assert await commits.settle(_delivery(user_id, "m0", part=30))
