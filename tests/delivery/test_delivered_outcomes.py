"""What the worker records when a message Telegram accepted cannot be recorded as delivered: the
claim was lost or the message erased during the send, or the database refused the shared
commit of the outcome (gateway.delivery.delivered_commit). Real sandbox, both databases."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.channels.telegram import TelegramAddress, TelegramChannel
from gateway.delivery.delivered_commit import DeliveredCommits, Delivery
from storage.enums import AttemptOutcome, MessageStatus
from storage.models import Message, TelegramCopy
from storage.repositories import outbox
from tests.delivery.conftest import Enqueue, UTCClock, WorkerFactory, load

pytestmark = pytest.mark.both_databases


async def _copies(sessionmaker: async_sessionmaker[AsyncSession]) -> list[str]:
    async with sessionmaker() as session:
        return list(await session.scalars(select(TelegramCopy.message_id)))


def _after_each_send(monkeypatch: pytest.MonkeyPatch, then: Any) -> list[str]:
    """Run `then(text)` once Telegram accepted each part; the settled deliveries' ids."""
    send, settle = TelegramChannel.send, DeliveredCommits.settle
    settled: list[str] = []

    async def sending(
        self: TelegramChannel, address: TelegramAddress, part: str, *a: Any, **k: Any
    ) -> str:
        sent = await send(self, address, part, *a, **k)
        await then(part)
        return sent

    async def settling(self: DeliveredCommits, delivery: Delivery) -> bool:
        settled.append(delivery.message_id)
        return await settle(self, delivery)

    monkeypatch.setattr(TelegramChannel, "send", sending)
    monkeypatch.setattr(DeliveredCommits, "settle", settling)
    return settled


async def test_a_claim_lost_during_the_send_drops_the_outcome(
    sessionmaker: async_sessionmaker[AsyncSession],
    enqueue: Enqueue,
    make_worker: WorkerFactory,
    clock: UTCClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message_id = await enqueue("taken over")
    other_worker = clock() + timedelta(hours=2)

    async def taken_over(_part: str) -> None:
        clock.advance(3600)  # our lease ran out; another worker claims the message
        async with sessionmaker() as session, session.begin():
            assert await outbox.claim(session, message_id, clock(), other_worker)

    settled = _after_each_send(monkeypatch, taken_over)
    assert await make_worker().run_once() == 0
    assert settled == [message_id]  # through the shared commit
    message = await load(sessionmaker, message_id)
    # The other worker's claim and content stand; nothing of ours was written.
    assert (message.status, message.claimed_until) == (MessageStatus.SENDING, other_worker)
    assert message.encrypted_content is not None
    assert message.attempts == []
    assert await _copies(sessionmaker) == []


async def test_a_message_erased_during_the_send_leaves_no_rows(
    sessionmaker: async_sessionmaker[AsyncSession],
    enqueue: Enqueue,
    make_worker: WorkerFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    erased = await enqueue("erased")
    kept = await enqueue("kept", created_offset=1)

    async def erase(part: str) -> None:
        if "erased" in part:
            async with sessionmaker() as session, session.begin():
                await session.execute(delete(Message).where(Message.id == erased))

    settled = _after_each_send(monkeypatch, erase)
    assert await make_worker().run_once() == 1
    assert settled == [erased, kept]
    async with sessionmaker() as session:
        assert await session.get(Message, erased) is None
    assert (await load(sessionmaker, kept)).status is MessageStatus.DELIVERED
    assert await _copies(sessionmaker) == [kept]


async def test_a_refused_commit_of_the_outcome_is_a_failed_try(
    sessionmaker: async_sessionmaker[AsyncSession],
    enqueue: Enqueue,
    make_worker: WorkerFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message_id = await enqueue("unrecorded")

    async def copies_table_gone(_part: str) -> None:
        async with sessionmaker() as session, session.begin():
            await session.execute(text("ALTER TABLE telegram_copies RENAME TO copies_away"))

    _after_each_send(monkeypatch, copies_table_gone)
    assert await make_worker().run_once() == 1
    message = await load(sessionmaker, message_id)
    # Telegram has it, but nothing says so: a retry, counted, that will send it again.
    assert message.status is MessageStatus.QUEUED
    assert [a.outcome for a in message.attempts] == [AttemptOutcome.RETRY]
    assert message.attempt_count == 1
    assert message.encrypted_content is not None
