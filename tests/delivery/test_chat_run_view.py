"""A chat's run reads the personal log once and sends its messages with it, for VIEW_FRESH at
most, and reads it again after anything but a plain delivery (gateway.delivery.attempt
Deliverer._view). Real sandbox, SQLite."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.channels.telegram import TelegramAddress, TelegramChannel
from gateway.delivery.attempt import VIEW_FRESH
from sandbox.client import SandboxClient
from storage.enums import Category, MessageStatus
from storage.models import LogGroup, Topic
from storage.repositories import groups
from storage.repositories.groups import LogView
from storage.types import utcnow
from tests.delivery.conftest import Enqueue, Personal, UTCClock, WorkerFactory, load, load_group


def _count_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Each read of a personal log, by user id."""
    read, reads = groups.linked_view_of, []

    async def counting(session: AsyncSession, user_id: int) -> LogView | None:
        reads.append(user_id)
        return await read(session, user_id)

    monkeypatch.setattr(groups, "linked_view_of", counting)
    return reads


async def test_a_run_reads_the_log_once_while_it_is_fresh(
    sessionmaker: async_sessionmaker[AsyncSession],
    personal: Personal,
    enqueue: Enqueue,
    make_worker: WorkerFactory,
    clock: UTCClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids = [await enqueue(f"line {n}", created_offset=n) for n in range(4)]
    reads = _count_reads(monkeypatch)
    send = TelegramChannel.send

    async def sending(
        self: TelegramChannel, address: TelegramAddress, part: str, *a: Any, **k: Any
    ) -> str:
        if "line 1" in part:
            clock.advance(VIEW_FRESH.total_seconds())  # the log read for line 0 is stale now
        return await send(self, address, part, *a, **k)

    monkeypatch.setattr(TelegramChannel, "send", sending)
    assert await make_worker().run_once() == 4
    # Read for line 0 (and line 1, sent with it), and again for line 2 (and 3).
    assert reads == [personal.user_id] * 2
    for message_id in ids:
        assert (await load(sessionmaker, message_id)).status is MessageStatus.DELIVERED


async def test_a_topic_made_for_one_message_is_the_next_one_s_too(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    enqueue: Enqueue,
    make_worker: WorkerFactory,
) -> None:
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Topic)
            .where(Topic.group_id == personal.group_id, Topic.category == Category.SYSTEM)
            .values(message_thread_id=None)
        )
    await enqueue("disk 91% full", category=Category.SYSTEM)
    await enqueue("disk 95% full", category=Category.SYSTEM, created_offset=1)
    topics = len((await control.get_chat(personal.chat_id)).topics)

    assert await make_worker().run_once() == 2

    group = await load_group(sessionmaker, personal.group_id)
    [topic] = [t for t in group.topics if t.category == Category.SYSTEM]
    # The run's log said "no topic" for both: the second read it again rather than make one
    # more.
    assert len((await control.get_chat(personal.chat_id)).topics) == topics + 1
    sent = (await control.get_chat(personal.chat_id)).bot_messages()[-2:]
    assert [m.message_thread_id for m in sent] == [topic.message_thread_id] * 2


async def test_an_unlink_reaches_the_run_once_its_log_is_stale(
    sessionmaker: async_sessionmaker[AsyncSession],
    personal: Personal,
    enqueue: Enqueue,
    make_worker: WorkerFactory,
    clock: UTCClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = await enqueue("before the unlink")
    second = await enqueue("after the unlink", created_offset=1)
    send = TelegramChannel.send

    async def sending(
        self: TelegramChannel, address: TelegramAddress, part: str, *a: Any, **k: Any
    ) -> str:
        sent = await send(self, address, part, *a, **k)
        if "before" in part:
            async with sessionmaker() as session, session.begin():
                await session.execute(
                    update(LogGroup)
                    .where(LogGroup.id == personal.group_id)
                    .values(unlinked_at=utcnow())
                )
            clock.advance(VIEW_FRESH.total_seconds())
        return sent

    monkeypatch.setattr(TelegramChannel, "send", sending)
    await make_worker().run_once()
    assert (await load(sessionmaker, first)).status is MessageStatus.DELIVERED
    unsent = await load(sessionmaker, second)
    assert unsent.status is MessageStatus.FAILED
    assert unsent.failure_reason == "no personal log linked"
