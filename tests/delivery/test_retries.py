"""Telegram errors: flood control, server and network errors with backoff, permanent errors."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.content_cipher import ContentCipher
from gateway.delivery import DeliveryWorker
from sandbox.client import SandboxClient
from storage.enums import AttemptOutcome, Category, MessageStatus
from storage.models import TelegramCopy
from storage.repositories import outbox
from tests.delivery.conftest import Enqueue, Personal, UTCClock, WorkerFactory, load
from tests.sandbox.conftest import FakeClock, make_bot


async def test_flood_control_waits_retry_after_without_counting_a_failure(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    enqueue: Enqueue,
    make_worker: WorkerFactory,
    clock: UTCClock,
) -> None:
    await control.add_fault(
        "sendMessage", error_code=429, description="Too Many Requests: retry after 30",
        times=1, retry_after=30,
    )  # fmt: skip
    message_id = await enqueue("hi")
    worker = make_worker()
    start = clock()

    assert await worker.run_once() == 1
    message = await load(sessionmaker, message_id)
    assert message.status == MessageStatus.QUEUED
    assert message.next_attempt_at == start + timedelta(seconds=30)
    assert message.attempt_count == 0
    assert message.encrypted_content is not None
    [attempt] = message.attempts
    assert attempt.outcome == AttemptOutcome.RETRY
    assert attempt.error is not None
    assert attempt.error.startswith("TelegramRetryAfter")

    clock.advance(29)
    assert await worker.run_once() == 0
    clock.advance(1)
    assert await worker.run_once() == 1

    message = await load(sessionmaker, message_id)
    assert message.status == MessageStatus.DELIVERED
    assert [(a.attempt, a.outcome) for a in message.attempts] == [
        (1, AttemptOutcome.RETRY),
        (2, AttemptOutcome.DELIVERED),
    ]
    assert len((await control.get_chat(personal.chat_id)).bot_messages()) == 1


async def test_server_errors_back_off_exponentially_then_deliver(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    enqueue: Enqueue,
    make_worker: WorkerFactory,
    clock: UTCClock,
) -> None:
    await control.add_fault(
        "sendMessage", error_code=500, description="Internal Server Error", times=2
    )
    message_id = await enqueue("hi")
    worker = make_worker(rng=lambda: 0.5)  # full jitter: half of 1 s, then half of 2 s

    await worker.run_once()
    message = await load(sessionmaker, message_id)
    assert message.next_attempt_at == clock() + timedelta(seconds=0.5)
    assert message.attempt_count == 1

    clock.advance(0.5)
    await worker.run_once()
    message = await load(sessionmaker, message_id)
    assert message.next_attempt_at == clock() + timedelta(seconds=1.0)
    assert message.attempt_count == 2

    clock.advance(1.0)
    await worker.run_once()
    message = await load(sessionmaker, message_id)
    assert message.status == MessageStatus.DELIVERED
    assert [(a.outcome, (a.error or "").split(":")[0]) for a in message.attempts] == [
        (AttemptOutcome.RETRY, "TelegramServerError"),
        (AttemptOutcome.RETRY, "TelegramServerError"),
        (AttemptOutcome.DELIVERED, ""),
    ]
    assert len((await control.get_chat(personal.chat_id)).bot_messages()) == 1


async def test_attempts_are_bounded_then_the_message_fails(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    enqueue: Enqueue,
    make_worker: WorkerFactory,
    clock: UTCClock,
) -> None:
    await control.add_fault("sendMessage", error_code=502, description="Bad Gateway")
    message_id = await enqueue("hi")
    worker = make_worker(max_attempts=3, rng=lambda: 0.999)

    for _ in range(3):
        assert await worker.run_once() == 1
        clock.advance(10)
    assert await worker.run_once() == 0

    message = await load(sessionmaker, message_id)
    assert message.status == MessageStatus.FAILED
    assert message.failure_reason == "gave up after 3 attempts: TelegramServerError: Bad Gateway"
    assert message.encrypted_content is None
    assert [a.outcome for a in message.attempts] == [
        AttemptOutcome.RETRY,
        AttemptOutcome.RETRY,
        AttemptOutcome.FAILED,
    ]


async def test_a_network_error_is_retried(
    sessionmaker: async_sessionmaker[AsyncSession],
    personal: Personal,
    enqueue: Enqueue,
    cipher: ContentCipher,
    clock: UTCClock,
    unused_tcp_port: int,
) -> None:
    message_id = await enqueue("hi")
    nowhere = make_bot(f"http://127.0.0.1:{unused_tcp_port}")
    try:
        worker = DeliveryWorker(sessionmaker, nowhere, cipher, clock=clock, rng=lambda: 0.5)
        await worker.run_once()
    finally:
        await nowhere.session.close()

    message = await load(sessionmaker, message_id)
    assert message.status == MessageStatus.QUEUED
    assert message.attempt_count == 1
    assert (message.attempts[0].error or "").startswith("TelegramNetworkError")


async def test_a_bad_request_fails_at_once_without_quoting_content(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    enqueue: Enqueue,
    make_worker: WorkerFactory,
) -> None:
    await control.add_fault(
        "sendMessage",
        error_code=400,
        description='Bad Request: can\'t parse entities: Unsupported start tag "s3cret" at byte 3',
        times=1,
    )
    message_id = await enqueue("hi")

    await make_worker().run_once()

    message = await load(sessionmaker, message_id)
    assert message.status == MessageStatus.FAILED
    assert message.failure_reason == "Bad Request: can't parse entities"
    assert "s3cret" not in (message.attempts[0].error or "")
    assert message.encrypted_content is None


async def test_a_partly_sent_message_resumes_without_duplicates_and_keeps_order(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    enqueue: Enqueue,
    make_worker: WorkerFactory,
    clock: UTCClock,
    fake_clock: FakeClock,
) -> None:
    await control.set_flood(enabled=True, group_per_minute=2)
    lines = [f"line {i:05d} of the build log" for i in range(400)]  # three parts
    long_id = await enqueue("\n".join(lines), category=Category.SYSTEM)
    next_id = await enqueue("after the log", category=Category.SYSTEM, created_offset=1)
    clock.advance(1)
    worker = make_worker()

    assert await worker.run_once() == 1  # parts 1 and 2 sent, part 3 hits the group limit
    long = await load(sessionmaker, long_id)
    assert long.status == MessageStatus.QUEUED
    first_two = long.attempts[0].external_id
    assert first_two is not None
    assert len(first_two.split(",")) == 2
    later = await load(sessionmaker, next_id)
    assert later.attempts == []
    assert later.next_attempt_at == long.next_attempt_at  # held back behind it
    # It was claimed with the rest of the chat's queue: handed back, not left leased.
    assert later.status == MessageStatus.QUEUED
    assert later.claimed_until is None

    wait = (long.next_attempt_at - clock()).total_seconds()
    clock.advance(wait)
    fake_clock.advance(wait)
    assert await worker.run_once() == 2

    thread = personal.threads[Category.SYSTEM]
    texts = [
        m.text or ""
        for m in (await control.get_chat(personal.chat_id)).bot_messages()
        if m.message_thread_id == thread
    ]
    assert [t[:6] for t in texts] == ["(1/3) ", "(2/3) ", "(3/3) ", "after "]
    long = await load(sessionmaker, long_id)
    assert long.status == MessageStatus.DELIVERED
    assert long.attempts[-1].external_id is not None
    assert long.attempts[-1].external_id.startswith(first_two + ",")


async def _copies_of(
    sessionmaker: async_sessionmaker[AsyncSession], message_id: str
) -> list[TelegramCopy]:
    async with sessionmaker() as session:
        rows = await session.scalars(
            select(TelegramCopy)
            .where(TelegramCopy.message_id == message_id)
            .order_by(TelegramCopy.telegram_message_id)
        )
        return list(rows)


async def test_a_send_whose_outcome_the_database_refuses_once_is_not_sent_again(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    enqueue: Enqueue,
    make_worker: WorkerFactory,
    clock: UTCClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Telegram took it; then the outcome's commit failed (a lock, a lost connection). Sent
    # again from scratch it arrived twice, and its copies were never recorded, so the
    # self-destruct never came.
    message_id = await enqueue("burn after reading", self_destruct_seconds=60)
    worker = make_worker()
    commits = worker._deliverer.delivered_commits
    real_commit = commits._commit
    refusals: list[int] = []

    async def refused_once(deliveries: Any) -> set[str]:
        if not refusals:
            refusals.append(len(deliveries))
            raise OperationalError("COMMIT", {}, sqlite3.OperationalError("disk I/O error"))
        return await real_commit(deliveries)

    monkeypatch.setattr(commits, "_commit", refused_once)
    await worker.run_once()
    assert refusals == [1]

    sends = [c for c in await control.get_calls() if c.method == "sendMessage"]
    assert len(sends) == 1
    message = await load(sessionmaker, message_id)
    assert message.status is MessageStatus.DELIVERED
    assert message.encrypted_content is None
    [copy] = await _copies_of(sessionmaker, message_id)
    assert copy.delete_at is not None
    assert copy.delete_at >= clock() + timedelta(seconds=60)
    assert copy.telegram_message_id == int(message.attempts[-1].external_id or "0")


async def test_an_unexpected_error_after_a_part_went_out_resumes_after_it(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    enqueue: Enqueue,
    make_worker: WorkerFactory,
    clock: UTCClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lines = [f"line {i:05d} of the build log" for i in range(250)]  # two parts
    message_id = await enqueue("\n".join(lines), category=Category.SYSTEM, self_destruct_seconds=60)
    worker = make_worker()
    channel = worker._telegram
    real_send = channel.send
    calls: list[bool] = []

    async def second_part_breaks(*args: Any, **kwargs: Any) -> str:
        calls.append(kwargs["last"])
        if kwargs["last"] and len(calls) == 2:
            raise RuntimeError("a bug after the first part")
        return await real_send(*args, **kwargs)

    monkeypatch.setattr(channel, "send", second_part_breaks)
    await worker.run_once()
    message = await load(sessionmaker, message_id)
    assert message.status is MessageStatus.QUEUED  # to be retried
    [first] = await _copies_of(sessionmaker, message_id)  # the part that went out is kept

    clock.advance((message.next_attempt_at - clock()).total_seconds())
    await worker.run_once()
    message = await load(sessionmaker, message_id)
    assert message.status is MessageStatus.DELIVERED
    sends = [c for c in await control.get_calls() if c.method == "sendMessage"]
    assert len(sends) == 2  # the first part once, the second once
    copies = await _copies_of(sessionmaker, message_id)
    assert len(copies) == 2
    assert copies[0].telegram_message_id == first.telegram_message_id
    assert {c.first_part_id for c in copies} == {first.telegram_message_id}


async def test_sent_parts_that_cannot_be_recorded_fall_back_to_a_counted_retry(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    enqueue: Enqueue,
    make_worker: WorkerFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A notice of the gateway's own settles through the claim's session (not the shared
    # commit); that write fails every time here. Recording what was sent fails as well, and
    # the attempt ends as an ordinary counted retry, not an error escaping with the message
    # leased (sent again at every lease's end, without bound).
    message_id = await enqueue("a notice", from_token=False)

    async def refused(*_: object, **__: object) -> None:
        raise OperationalError("UPDATE", {}, sqlite3.OperationalError("disk I/O error"))

    monkeypatch.setattr(outbox, "settle_carried", refused)
    await make_worker().run_once()
    message = await load(sessionmaker, message_id)
    assert message.status is MessageStatus.QUEUED
    assert [a.outcome for a in message.attempts] == [AttemptOutcome.RETRY]
    assert message.attempt_count == 1
    assert len([c for c in await control.get_calls() if c.method == "sendMessage"]) == 1
