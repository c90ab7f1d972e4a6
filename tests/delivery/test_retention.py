"""Retention: records go at their deadline, undelivered ones are reported once, copies the bot
can no longer delete are forgotten; the database is read directly to prove it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import func, inspect, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.content_cipher import ContentCipher
from gateway.outbox_payload import OutboxPayload
from gateway.retention import RetentionPurger
from sandbox.client import SandboxClient
from storage.enums import Category, MessageStatus
from storage.models import DeliveryAttempt, Message, TelegramCopy
from storage.repositories import copies
from tests.delivery.conftest import Enqueue, Personal, UTCClock, WorkerFactory

pytestmark = pytest.mark.both_databases

PurgerFactory = Callable[..., RetentionPurger]
DAY = 86400


@pytest.fixture
def make_purger(
    sessionmaker: async_sessionmaker[AsyncSession],
    cipher: ContentCipher,
    clock: UTCClock,
    scheduler: AsyncIOScheduler,
) -> PurgerFactory:
    def make(**overrides: object) -> RetentionPurger:
        options: dict[str, object] = {"on_notice": lambda: None, "clock": clock}
        return RetentionPurger(sessionmaker, cipher, scheduler, **(options | overrides))  # type: ignore[arg-type]

    return make


async def _mentions(sessionmaker: async_sessionmaker[AsyncSession], needle: str) -> list[str]:
    """Every table.column holding `needle` as text, over the database's own catalogue (not the
    models: a table they forgot would still be searched)."""
    found: list[str] = []
    async with sessionmaker() as session:
        connection = await session.connection()
        columns = await connection.run_sync(
            lambda sync: [
                (table, column["name"])
                for table in inspect(sync).get_table_names()
                for column in inspect(sync).get_columns(table)
            ]
        )
        for table, column in columns:
            hit = await session.scalar(
                # Names from the catalogue itself, not from input.
                text(f'SELECT COUNT(*) FROM "{table}" WHERE CAST("{column}" AS TEXT) LIKE :n'),  # noqa: S608
                {"n": f"%{needle}%"},
            )
            if hit:
                found.append(f"{table}.{column}")
    return found


async def test_a_delivered_message_leaves_nothing_after_its_deadline(
    sessionmaker: async_sessionmaker[AsyncSession],
    enqueue: Enqueue,
    make_worker: WorkerFactory,
    make_purger: PurgerFactory,
    clock: UTCClock,
) -> None:
    message_id = await enqueue("short-lived")
    await make_worker().run_once()
    assert sorted(await _mentions(sessionmaker, message_id)) == [
        "delivery_attempts.message_id",
        "messages.id",
        "telegram_copies.message_id",
    ]
    purger = make_purger()
    clock.advance(DAY - 1)
    assert await purger.purge_due() == 0
    clock.advance(1)
    assert await purger.purge_due() == 1
    assert await _mentions(sessionmaker, message_id) == []
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(DeliveryAttempt)) == 0
        # The copy stays while the bot may still delete it (for /erase), with no link left.
        [kept] = await session.scalars(select(TelegramCopy))
    assert kept.message_id is None


async def _sent_by_a_token(
    sessionmaker: async_sessionmaker[AsyncSession],
    personal: Personal,
    message_ids: list[str],
    **values: object,
) -> None:
    """Make the messages sent through the API, by a token of the person's (and set `values`)."""
    async with sessionmaker() as session:
        await session.execute(
            update(Message)
            .where(Message.id.in_(message_ids))
            .values(sender_token_id=personal.token_id, **values)
        )
        await session.commit()


async def test_an_undelivered_message_is_dropped_and_reported_once(
    sessionmaker: async_sessionmaker[AsyncSession],
    personal: Personal,
    cipher: ContentCipher,
    enqueue: Enqueue,
    make_purger: PurgerFactory,
    clock: UTCClock,
) -> None:
    stuck = [await enqueue(f"never {n}", created_offset=n) for n in range(2)]
    await _sent_by_a_token(sessionmaker, personal, stuck)
    told: list[bool] = []
    purger = make_purger(on_notice=lambda: told.append(True))
    clock.advance(DAY + 1)
    assert await purger.purge_due() == 2
    assert told == [True]
    for message_id in stuck:
        assert await _mentions(sessionmaker, message_id) == []
    async with sessionmaker() as session:
        [notice] = await session.scalars(select(Message))
    assert notice.category is Category.GENERAL
    assert notice.status is MessageStatus.QUEUED
    assert notice.encrypted_content is not None
    body = OutboxPayload.from_dict(cipher.open(notice.id, notice.encrypted_content)).value
    assert "2 message(s) expired before they could be delivered" in body
    assert "never" not in body  # no content of what was dropped

    # Once: the next passes find nothing more to report (the notice itself is not reported).
    assert await purger.purge_due() == 0
    clock.advance(DAY)
    assert await purger.purge_due() == 1  # the undelivered notice goes silently
    assert told == [True]


async def test_a_digest_dropped_undelivered_reports_the_messages_it_carried(
    sessionmaker: async_sessionmaker[AsyncSession],
    personal: Personal,
    cipher: ContentCipher,
    enqueue: Enqueue,
    make_purger: PurgerFactory,
    clock: UTCClock,
) -> None:
    digest = await enqueue("the digest", from_token=False)  # the gateway's own message
    carried = [await enqueue(f"carried {n}", created_offset=n) for n in range(3)]
    await _sent_by_a_token(
        sessionmaker, personal, carried, carried_by=digest, encrypted_content=None
    )
    told: list[bool] = []
    purger = make_purger(on_notice=lambda: told.append(True))
    clock.advance(DAY + 1)

    assert await purger.purge_due() == 1  # the digest; its members go with it

    assert told == [True]
    assert purger.expired_undelivered == 3
    async with sessionmaker() as session:
        [notice] = await session.scalars(select(Message))
    assert notice.encrypted_content is not None
    body = OutboxPayload.from_dict(cipher.open(notice.id, notice.encrypted_content)).value
    assert "3 message(s) expired before they could be delivered" in body


async def test_a_message_being_sent_waits_for_its_outcome(
    sessionmaker: async_sessionmaker[AsyncSession],
    enqueue: Enqueue,
    make_purger: PurgerFactory,
    clock: UTCClock,
) -> None:
    clock.advance(DAY)
    held = await enqueue(
        "in flight",
        status=MessageStatus.SENDING,
        claimed_until=clock() + timedelta(seconds=30),
        created_offset=-DAY,
    )
    purger = make_purger()
    assert await purger.purge_due() == 0
    assert await _mentions(sessionmaker, held) == ["messages.id"]
    clock.advance(31)  # the lease ran out: the worker is gone, the record may go
    assert await purger.purge_due() == 1


async def test_copies_are_forgotten_once_the_bot_cannot_delete_them(
    sessionmaker: async_sessionmaker[AsyncSession],
    personal: Personal,
    make_purger: PurgerFactory,
    clock: UTCClock,
) -> None:
    async with sessionmaker() as session:
        copies.add(
            session,
            user_id=personal.user_id,
            message_id=None,
            chat_id=personal.chat_id,
            telegram_ids=[1, 2],
            sent_at=clock(),
            delete_at=None,
        )
        copies.add(
            session,
            user_id=personal.user_id,
            message_id=None,
            chat_id=personal.chat_id,
            telegram_ids=[3],
            sent_at=clock(),
            delete_at=clock() + timedelta(days=3),
        )
        await session.commit()
    purger = make_purger()
    clock.advance(48 * 3600 - 1)
    await purger.purge_due()
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(TelegramCopy)) == 3
    clock.advance(2)
    await purger.purge_due()
    async with sessionmaker() as session:
        left = list(await session.scalars(select(TelegramCopy.telegram_message_id)))
    assert left == [3]  # a scheduled deletion is the deleter's to finish or give up


async def test_a_message_inside_a_digest_on_its_way_waits_for_the_digest(
    sessionmaker: async_sessionmaker[AsyncSession],
    enqueue: Enqueue,
    make_purger: PurgerFactory,
    clock: UTCClock,
) -> None:
    # The gateway's own message, its retention an hour longer.
    digest = await enqueue("the digest", created_offset=3600, from_token=False)
    member = await enqueue("carried", created_offset=0)
    async with sessionmaker() as session, session.begin():
        row = await session.get(Message, member)
        assert row is not None
        row.carried_by, row.encrypted_content = digest, None
    purger = make_purger()
    clock.advance(DAY)  # the member's deadline passed; its content is still in the digest
    assert await purger.purge_due() == 0
    async with sessionmaker() as session, session.begin():
        carrier = await session.get(Message, digest)
        assert carrier is not None
        carrier.status = MessageStatus.DELIVERED
    assert await purger.purge_due() == 1
    assert await _mentions(sessionmaker, member) == []


async def test_a_message_past_its_retention_is_not_sent_late_but_dropped(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    enqueue: Enqueue,
    make_worker: WorkerFactory,
    make_purger: PurgerFactory,
    clock: UTCClock,
) -> None:
    # A backlog outlived the message (a one-time code kept a minute, say): the worker leaves
    # it to the purge, which drops it and tells the person once, instead of sending it late.
    stale = await enqueue("code 123456, valid for a minute")
    await _sent_by_a_token(sessionmaker, personal, [stale])
    clock.advance(DAY + 1)
    assert await make_worker().run_once() == 0
    assert not [c for c in await control.get_calls() if c.method == "sendMessage"]
    async with sessionmaker() as session:
        row = await session.get(Message, stale)
        assert row is not None
        assert row.status is MessageStatus.QUEUED
    assert await make_purger().purge_due() == 1
    assert await _mentions(sessionmaker, stale) == []
