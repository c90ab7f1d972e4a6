"""Claims and leases across workers, the run loop, health state and what reaches the logs."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.delivery import DeliveryWorker
from gateway.delivery import worker as worker_module
from sandbox.client import MessageView, SandboxClient
from storage.enums import Category, Channel, MessageStatus
from storage.models import Message, User
from storage.repositories import outbox
from tests.delivery.conftest import Enqueue, Personal, UTCClock, WorkerFactory, load
from tests.delivery.test_paced_worker import add_person

pytestmark = pytest.mark.both_databases


async def test_a_crashed_workers_expired_claim_is_taken_over(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    enqueue: Enqueue,
    make_worker: WorkerFactory,
    clock: UTCClock,
) -> None:
    # A worker claimed it, then died before sending: status sending, lease in the past.
    expired = await enqueue(
        "orphan", status=MessageStatus.SENDING, claimed_until=clock() - timedelta(seconds=1)
    )
    # Another worker is still within its lease on another person's message: leave that one
    # alone. (In the same chat it would hold this one back until it runs out, since its
    # outcome is unknown: test_an_attempt_that_escapes_keeps_the_chats_order_behind_it.)
    held = await enqueue(
        "in flight", status=MessageStatus.SENDING, claimed_until=clock() + timedelta(seconds=30)
    )
    async with sessionmaker() as session, session.begin():
        other = User(telegram_id=4242)
        session.add(other)
        await session.flush()
        await session.execute(
            update(Message).where(Message.id == held).values(recipient_id=other.id)
        )

    assert await make_worker().run_once() == 1

    assert (await load(sessionmaker, expired)).status == MessageStatus.DELIVERED
    assert (await load(sessionmaker, held)).status == MessageStatus.SENDING
    assert [m.text for m in (await control.get_chat(personal.chat_id)).bot_messages()] == [
        "orphan\n\n#auth #security"
    ]


async def test_two_workers_never_deliver_a_message_twice(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    enqueue: Enqueue,
    make_worker: WorkerFactory,
) -> None:
    ids = [await enqueue(f"message {i}", created_offset=i / 1000) for i in range(12)]
    first, second = make_worker(), make_worker()

    handled = await asyncio.gather(first.run_once(), second.run_once())

    assert sum(handled) == 12, handled
    texts = [m.text or "" for m in (await control.get_chat(personal.chat_id)).bot_messages()]
    assert sorted(texts) == sorted(f"message {i}\n\n#auth #security" for i in range(12))
    for message_id in ids:
        message = await load(sessionmaker, message_id)
        assert message.status == MessageStatus.DELIVERED
        assert len(message.attempts) == 1


async def test_one_chat_is_served_in_order(
    control: SandboxClient, personal: Personal, enqueue: Enqueue, make_worker: WorkerFactory
) -> None:
    for i in range(5):
        await enqueue(f"step {i}", created_offset=i / 1000)

    await make_worker().run_once()

    texts = [m.text for m in (await control.get_chat(personal.chat_id)).bot_messages()]
    assert texts == [f"step {i}\n\n#auth #security" for i in range(5)]


async def test_logs_carry_ids_not_content(
    caplog: pytest.LogCaptureFixture,
    control: SandboxClient,
    personal: Personal,
    enqueue: Enqueue,
    make_worker: WorkerFactory,
    clock: UTCClock,
) -> None:
    caplog.set_level(logging.DEBUG)
    await control.add_fault(
        "sendMessage", error_code=500, description="Internal Server Error", times=1
    )
    delivered = await enqueue("TOP-SECRET-BODY", hashtags=("hiddentag",))

    worker = make_worker()
    await worker.run_once()
    clock.advance(5)
    await worker.run_once()

    text = caplog.text
    assert delivered in text
    assert str(personal.chat_id) in text
    assert "TelegramServerError" in text
    for secret in ("TOP-SECRET-BODY", "hiddentag", "#auth"):
        assert secret not in text


async def test_run_wakes_on_notify_and_stops(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    enqueue: Enqueue,
    make_worker: WorkerFactory,
) -> None:
    # A long poll interval: only notify() can make the messages go out within the wait.
    worker = make_worker(poll_interval=30)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        for text in ("first", "second"):
            await enqueue(text)
            worker.notify()
            await control.wait_for_bot_message(personal.chat_id, _starts_with(text), within=3)
        assert worker.state().running
    finally:
        stop.set()
        await asyncio.wait_for(task, 2)
    state = worker.state()
    assert not state.running
    assert state.last_error is None
    assert state.last_run_at is not None


async def test_runs_that_try_nothing_are_spaced_however_often_the_worker_is_woken(
    personal: Personal, make_worker: WorkerFactory
) -> None:
    # Nothing is due: every run tries nothing. Woken over and over (as by a stream of messages
    # for a held chat), the worker still starts runs at most once per HELD_RUN_SPACING.
    worker = make_worker(poll_interval=30)
    loop = asyncio.get_running_loop()
    starts: list[float] = []
    run_once = worker.run_once

    async def timed_run_once() -> int:
        starts.append(loop.time())
        return await run_once()

    worker.run_once = timed_run_once  # type: ignore[method-assign]
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        async with asyncio.timeout(10):
            while len(starts) < 6:
                worker.notify()
                await asyncio.sleep(0.001)  # not a wait for a condition: a stream of notifies
    finally:
        stop.set()
        await asyncio.wait_for(task, 2)
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert min(gaps) >= worker_module.HELD_RUN_SPACING * 0.9, gaps


async def test_state_reports_a_failed_run(personal: Personal, make_worker: WorkerFactory) -> None:
    def broken_clock() -> object:
        raise RuntimeError("clock failed")

    worker = make_worker(clock=broken_clock)
    assert worker.state().last_run_at is None

    with pytest.raises(RuntimeError):
        await worker.run_once()

    assert worker.state().last_error == "RuntimeError"


def _starts_with(text: str) -> Callable[[MessageView], bool]:
    return lambda message: (message.text or "").startswith(text)


async def test_a_claim_takes_only_the_messages_it_names(
    sessionmaker: async_sessionmaker[AsyncSession], enqueue: Enqueue, clock: UTCClock
) -> None:
    """Not another message that is due too, nor one whose lease ran out: the claim's state
    (queued and due, or a lease run out) is an OR, which must not escape the id list (on
    PostgreSQL it did, when the SQLite planner hint rendered it without brackets)."""
    named = await enqueue("named")
    due_too = await enqueue("due too")
    expired_lease = clock() - timedelta(seconds=1)
    orphan = await enqueue("orphan", status=MessageStatus.SENDING, claimed_until=expired_lease)

    async with sessionmaker() as session:
        claimed = await outbox.claim_many(
            session, [named], clock(), clock() + timedelta(seconds=60)
        )
        await session.commit()

    assert list(claimed) == [named]
    assert (await load(sessionmaker, named)).status == MessageStatus.SENDING
    assert (await load(sessionmaker, due_too)).status == MessageStatus.QUEUED
    left = await load(sessionmaker, orphan)
    assert (left.status, left.claimed_until) == (MessageStatus.SENDING, expired_lease)


async def _run_with_escaping_attempt(
    worker: DeliveryWorker, monkeypatch: pytest.MonkeyPatch, message_id: str
) -> None:
    """A run in which the attempt at `message_id` ends in an error that escapes it (a
    shutdown, the database gone), leaving it leased; the others' attempts are as usual."""
    real = worker._deliverer.deliver_claimed

    async def escapes(claimed: Any) -> Any:
        if claimed.message.id == message_id:
            raise RuntimeError("the database went away")
        return await real(claimed)

    monkeypatch.setattr(worker._deliverer, "deliver_claimed", escapes)
    with pytest.raises(RuntimeError):
        await worker.run_once()
    monkeypatch.undo()


@pytest.mark.parametrize("restarted", [False, True], ids=["same worker", "after a restart"])
@pytest.mark.parametrize("behind", ["claimed with it", "nothing claimed"])
async def test_an_attempt_that_escapes_keeps_the_chats_order_behind_it(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    enqueue: Enqueue,
    make_worker: WorkerFactory,
    clock: UTCClock,
    monkeypatch: pytest.MonkeyPatch,
    behind: str,
    restarted: bool,
) -> None:
    # The attempt at A ends in an error that escapes it (a shutdown, the database gone): A
    # stays leased, its outcome unknown. B, claimed with it, and N, committed meanwhile, must
    # not go out before A does, also when the worker that held them back is gone (a new one
    # knows only the outbox).
    a = await enqueue("A", created_offset=0)
    b = await enqueue("B", created_offset=1) if behind == "claimed with it" else None
    worker = make_worker()
    await _run_with_escaping_attempt(worker, monkeypatch, a)
    leased = await load(sessionmaker, a)
    assert leased.status is MessageStatus.SENDING
    assert leased.claimed_until is not None
    if b is not None:
        handed_back = await load(sessionmaker, b)
        assert handed_back.status is MessageStatus.QUEUED
        assert handed_back.claimed_until is None
        assert handed_back.next_attempt_at == leased.claimed_until

    n = await enqueue("N", created_offset=2)
    if restarted:
        worker = make_worker()
    await worker.run_once()  # A's lease has not run out: nothing goes
    assert not [c for c in await control.get_calls() if c.method == "sendMessage"]
    clock.advance((leased.claimed_until - clock()).total_seconds() + 1)
    await worker.run_once()
    texts = [m.text for m in (await control.get_chat(personal.chat_id)).bot_messages()]
    expected = ["A", "B", "N"] if b is not None else ["A", "N"]
    assert [t[:1] for t in texts if t] == expected
    for message_id in (a, b, n):
        if message_id is not None:
            assert (await load(sessionmaker, message_id)).status is MessageStatus.DELIVERED


async def test_a_stopped_workers_run_out_leases_wait_behind_its_live_one_and_block_no_one(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    enqueue: Enqueue,
    make_worker: WorkerFactory,
    clock: UTCClock,
) -> None:
    # A worker stopped while sending A, a long message whose lease it had extended; B and C,
    # claimed with it on the usual lease, are due again. A new worker holds the chat until A's
    # lease runs out (its outcome is unknown): B and C must wait behind A, queued, and must not
    # fill every pass meanwhile, so that another person's message still goes.
    live = clock() + timedelta(seconds=300)
    run_out = clock() - timedelta(seconds=1)
    a = await enqueue("A", status=MessageStatus.SENDING, claimed_until=live, created_offset=0)
    b = await enqueue("B", status=MessageStatus.SENDING, claimed_until=run_out, created_offset=1)
    c = await enqueue("C", status=MessageStatus.SENDING, claimed_until=run_out, created_offset=2)
    other = await add_person(control, sessionmaker, "Bo")
    d = await enqueue("D", category=Category.GENERAL, created_offset=3)  # Bo has no forum
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Message).where(Message.id == d).values(recipient_id=other.user_id)
        )
    worker = make_worker(batch_size=2)  # a pass holds no more than B and C

    assert await worker.run_once() == 1

    delivered = await load(sessionmaker, d)
    assert delivered.status is MessageStatus.DELIVERED, delivered.failure_reason
    for waiting in (b, c):
        message = await load(sessionmaker, waiting)
        assert (message.status, message.next_attempt_at) == (MessageStatus.QUEUED, live)
    clock.advance((live - clock()).total_seconds() + 1)
    while await worker.run_once():
        pass
    texts = [m.text for m in (await control.get_chat(personal.chat_id)).bot_messages()]
    assert [t[:1] for t in texts if t] == ["A", "B", "C"]
    for message_id in (a, b, c):
        assert (await load(sessionmaker, message_id)).status is MessageStatus.DELIVERED


async def test_a_chat_takes_at_most_its_share_of_a_pass(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    enqueue: Enqueue,
    make_worker: WorkerFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A pass waits for its slowest chat: one chat's long queue goes a share at a time, in
    # order, and what it did not claim stays queued for the next pass.
    monkeypatch.setattr(worker_module, "CHAT_SHARE", 2)
    ids = [await enqueue(f"{n}", created_offset=n) for n in range(5)]
    worker = make_worker()

    assert await worker.run_once() == 2
    statuses = [(await load(sessionmaker, m)).status for m in ids]
    assert statuses == [MessageStatus.DELIVERED] * 2 + [MessageStatus.QUEUED] * 3
    assert [await worker.run_once() for _ in range(3)] == [2, 1, 0]
    texts = [m.text for m in (await control.get_chat(personal.chat_id)).bot_messages()]
    assert [t[:1] for t in texts if t] == ["0", "1", "2", "3", "4"]


async def test_a_broken_off_attempt_on_another_channel_holds_back_no_telegram_message(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    enqueue: Enqueue,
    make_worker: WorkerFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hook = await enqueue("by webhook", created_offset=0)
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Message).where(Message.id == hook).values(channels=[Channel.WEBHOOK.value])
        )
    claimed_with_it = await enqueue("by telegram", created_offset=1)
    worker = make_worker()
    await _run_with_escaping_attempt(worker, monkeypatch, hook)
    assert (await load(sessionmaker, hook)).status is MessageStatus.SENDING
    later = await enqueue("also by telegram", created_offset=2)
    await worker.run_once()  # the webhook message's lease binds no Telegram message
    for message_id in (claimed_with_it, later):
        assert (await load(sessionmaker, message_id)).status is MessageStatus.DELIVERED
