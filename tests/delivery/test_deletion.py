"""The bot's messages in a log: recorded at delivery, deleted when due (self-destruct, unread
ephemeral) in batches, gone counts as done, failures retried and finally reported."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

import pytest
from aiogram import Bot
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.content_cipher import ContentCipher
from gateway.deletion import MAX_ATTEMPTS, CopyDeleter
from gateway.ephemeral import LAST_CHANCE, READ_DELETE_TEXT, ReadDelete
from gateway.outbox_payload import OutboxPayload
from sandbox.client import SandboxClient
from storage.enums import Category, MessageStatus
from storage.models import Message, TelegramCopy
from storage.repositories import copies
from tests.delivery.conftest import Enqueue, Personal, UTCClock, WorkerFactory

DeleterFactory = Callable[..., CopyDeleter]


@pytest.fixture
def make_deleter(
    sessionmaker: async_sessionmaker[AsyncSession],
    bot: Bot,
    cipher: ContentCipher,
    clock: UTCClock,
    scheduler: AsyncIOScheduler,
) -> DeleterFactory:
    def make(**overrides: object) -> CopyDeleter:
        options: dict[str, object] = {"on_notice": lambda: None, "clock": clock, "rng": lambda: 0.5}
        return CopyDeleter(sessionmaker, bot, cipher, scheduler, **(options | overrides))  # type: ignore[arg-type]

    return make


async def _copies(sessionmaker: async_sessionmaker[AsyncSession]) -> list[TelegramCopy]:
    async with sessionmaker() as session:
        return list(await session.scalars(select(TelegramCopy).order_by(TelegramCopy.id)))


async def test_delivery_records_every_part_and_when_it_must_go(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    enqueue: Enqueue,
    make_worker: WorkerFactory,
    clock: UTCClock,
) -> None:
    plain = await enqueue("kept", created_offset=0)
    burning = await enqueue("x " * 3000, self_destruct_seconds=90, created_offset=1)  # 2 parts
    fleeting = await enqueue("read me once", ephemeral=True, created_offset=2)
    assert await make_worker().run_once() == 3

    rows = await _copies(sessionmaker)
    by_message: dict[str | None, list[TelegramCopy]] = {}
    for row in rows:
        by_message.setdefault(row.message_id, []).append(row)
    [kept] = by_message[plain]
    assert kept.delete_at is None  # recorded (for DELETE and /erase), nothing scheduled
    first, second = by_message[burning]
    assert first.delete_at == second.delete_at == clock() + timedelta(seconds=90)
    assert first.first_part_id == second.first_part_id == first.telegram_message_id
    [ephemeral] = by_message[fleeting]
    assert ephemeral.delete_at == clock() + LAST_CHANCE
    assert {r.chat_id for r in rows} == {personal.chat_id}
    assert {r.user_id for r in rows} == {personal.user_id}

    chat = await control.get_chat(personal.chat_id)
    sent = chat.message(ephemeral.telegram_message_id)
    assert sent.reply_markup == {
        "inline_keyboard": [[{"text": READ_DELETE_TEXT, "callback_data": ReadDelete().pack()}]]
    }
    assert chat.message(first.telegram_message_id).reply_markup is None


async def test_ephemeral_button_goes_on_the_last_part_only(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    enqueue: Enqueue,
    make_worker: WorkerFactory,
) -> None:
    await enqueue("y " * 3000, ephemeral=True)
    await make_worker().run_once()
    first, last = await _copies(sessionmaker)
    chat = await control.get_chat(personal.chat_id)
    assert chat.message(first.telegram_message_id).reply_markup is None
    assert chat.message(last.telegram_message_id).reply_markup is not None


async def test_self_destruct_deletes_at_the_right_time(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    enqueue: Enqueue,
    make_worker: WorkerFactory,
    make_deleter: DeleterFactory,
    clock: UTCClock,
) -> None:
    await enqueue("burn after reading", self_destruct_seconds=60)
    await make_worker().run_once()
    [row] = await _copies(sessionmaker)
    deleter = make_deleter()

    clock.advance(59)
    assert await deleter.delete_due() == 0
    assert (await control.get_chat(personal.chat_id)).message(
        row.telegram_message_id
    ).deleted_at is None

    clock.advance(3)  # two seconds late
    assert await deleter.delete_due() == 1
    assert (await control.get_chat(personal.chat_id)).message(row.telegram_message_id).deleted_at
    assert await _copies(sessionmaker) == []
    assert deleter.stats.deleted == 1
    assert deleter.stats.last_lateness_seconds == 2.0


async def test_deletions_due_together_go_in_batches_of_100(
    sessionmaker: async_sessionmaker[AsyncSession],
    bot: Bot,
    control: SandboxClient,
    personal: Personal,
    make_deleter: DeleterFactory,
    clock: UTCClock,
) -> None:
    ids = [(await bot.send_message(personal.chat_id, f"m{n}")).message_id for n in range(150)]
    async with sessionmaker() as session:
        copies.add(
            session,
            user_id=personal.user_id,
            message_id=None,
            chat_id=personal.chat_id,
            telegram_ids=ids,
            sent_at=clock(),
            delete_at=clock(),
        )
        await session.commit()
    calls_before = len(await control.get_calls())

    assert await make_deleter().delete_due() == 150

    calls = [c for c in (await control.get_calls())[calls_before:] if c.method.startswith("delete")]
    assert [(c.method, len(c.params["message_ids"])) for c in calls] == [
        ("deleteMessages", 100),
        ("deleteMessages", 50),
    ]
    chat = await control.get_chat(personal.chat_id)
    assert all(chat.message(i).deleted_at for i in ids)
    assert await _copies(sessionmaker) == []


async def test_a_message_already_gone_counts_as_deleted(
    sessionmaker: async_sessionmaker[AsyncSession],
    bot: Bot,
    control: SandboxClient,
    personal: Personal,
    enqueue: Enqueue,
    make_worker: WorkerFactory,
    make_deleter: DeleterFactory,
    clock: UTCClock,
) -> None:
    await enqueue("gone early", self_destruct_seconds=30)
    await make_worker().run_once()
    [row] = await _copies(sessionmaker)
    await bot.delete_message(personal.chat_id, row.telegram_message_id)  # the person did it
    # Telegram refuses the batch as a whole; one by one it says "not found": done, not failed.
    await control.add_fault(
        "deleteMessages", error_code=400, description="Bad Request: nope", times=1
    )
    clock.advance(30)
    deleter = make_deleter()
    assert await deleter.delete_due() == 1
    assert await _copies(sessionmaker) == []
    assert deleter.stats.given_up == 0


async def test_failures_are_retried_with_backoff(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    enqueue: Enqueue,
    make_worker: WorkerFactory,
    make_deleter: DeleterFactory,
    clock: UTCClock,
) -> None:
    await enqueue("stubborn", self_destruct_seconds=10)
    await make_worker().run_once()
    await control.add_fault(
        "deleteMessages", error_code=500, description="Internal Server Error", times=1
    )
    clock.advance(10)
    deleter = make_deleter()
    assert await deleter.delete_due() == 1
    [row] = await _copies(sessionmaker)
    assert row.delete_attempts == 1
    assert row.retry_at == clock() + timedelta(seconds=15)  # 30 s ceiling, jitter 0.5
    assert row.last_error is not None
    assert "Internal Server Error" in row.last_error

    assert await deleter.delete_due() == 0  # not yet
    clock.advance(16)
    assert await deleter.delete_due() == 1
    assert await _copies(sessionmaker) == []
    chat = await control.get_chat(personal.chat_id)
    assert chat.message(row.telegram_message_id).deleted_at


async def test_a_deletion_that_never_succeeds_is_reported_in_general(
    sessionmaker: async_sessionmaker[AsyncSession],
    cipher: ContentCipher,
    control: SandboxClient,
    personal: Personal,
    enqueue: Enqueue,
    make_worker: WorkerFactory,
    make_deleter: DeleterFactory,
    clock: UTCClock,
) -> None:
    immortal = await enqueue("immortal", self_destruct_seconds=10)
    worker = make_worker()
    await worker.run_once()
    await control.add_fault("deleteMessages", error_code=500, description="Internal Server Error")
    notified: list[bool] = []
    deleter = make_deleter(on_notice=lambda: notified.append(True))
    clock.advance(10)
    for _ in range(MAX_ATTEMPTS):
        assert await deleter.delete_due() == 1
        [row] = await _copies(sessionmaker) or [None]
        if row is None:
            break
        assert row.retry_at is not None
        clock.now = row.retry_at
    assert await _copies(sessionmaker) == []
    assert deleter.stats.given_up == 1
    assert notified == [True]

    async with sessionmaker() as session:
        [notice] = await session.scalars(select(Message).where(Message.id != immortal))
    assert notice.category is Category.GENERAL
    assert notice.status is MessageStatus.QUEUED
    assert notice.encrypted_content is not None
    text = OutboxPayload.from_dict(cipher.open(notice.id, notice.encrypted_content)).value
    assert "1 message(s) in this log could not be deleted" in text
    assert "Internal Server Error" in text
    await control.clear_faults()
    await worker.run_once()
    shown = (await control.get_chat(personal.chat_id)).bot_messages()[-1]
    assert shown.message_thread_id is None  # General
    assert "could not be deleted" in (shown.text or "")


async def test_no_retry_reaches_past_the_48_hour_limit(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    enqueue: Enqueue,
    make_worker: WorkerFactory,
    make_deleter: DeleterFactory,
    clock: UTCClock,
) -> None:
    await enqueue("late", ephemeral=True)  # due just before the 48-hour limit
    await make_worker().run_once()
    await control.add_fault("deleteMessages", error_code=500, description="Internal Server Error")
    clock.advance(LAST_CHANCE.total_seconds() + 9 * 60 + 58)  # 2 s left in the window
    deleter = make_deleter()
    assert await deleter.delete_due() == 1
    assert await _copies(sessionmaker) == []  # given up at once: a retry would be too late
    assert deleter.stats.given_up == 1


async def test_scheduled_deletions_survive_a_restart(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    enqueue: Enqueue,
    make_worker: WorkerFactory,
    make_deleter: DeleterFactory,
    clock: UTCClock,
) -> None:
    await enqueue("overnight", self_destruct_seconds=60)
    await make_worker().run_once()
    [row] = await _copies(sessionmaker)
    clock.advance(3600)  # the gateway was down when it was due
    done = asyncio.Event()
    deleter = make_deleter()
    original = deleter.delete_due

    async def observed() -> int:
        count = await original()
        if count:
            done.set()
        return count

    deleter._due._work = observed  # observe the scheduled run itself
    await deleter.start()
    async with asyncio.timeout(10):
        await done.wait()
    assert (await control.get_chat(personal.chat_id)).message(row.telegram_message_id).deleted_at


async def test_parts_already_sent_are_kept_when_a_later_part_fails(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    enqueue: Enqueue,
    make_worker: WorkerFactory,
    clock: UTCClock,
) -> None:
    await enqueue("z " * 3000, self_destruct_seconds=60)  # two parts
    # Seeded: the first sendMessage passes, the second is refused for good.
    await control.add_fault(
        "sendMessage", error_code=400, description="Bad Request: nope", probability=0.5, seed=10
    )
    await make_worker().run_once()
    [kept] = await _copies(sessionmaker)  # the part that did reach the log
    chat = await control.get_chat(personal.chat_id)
    assert chat.message(kept.telegram_message_id).deleted_at is None
    assert kept.delete_at == clock() + timedelta(seconds=60)  # its self-destruct still holds
