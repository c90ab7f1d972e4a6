"""Releasing held (quiet-hours) messages: alone or as one digest per topic, delivered by the
worker through the sandbox; statuses of digested messages follow the digest's."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.content_cipher import ContentCipher
from gateway.deferred import DeferredReleaser
from sandbox.client import SandboxClient
from storage.enums import AttemptOutcome, Category, MessageStatus
from storage.models import Message
from storage.repositories import messages
from tests.delivery.conftest import Enqueue, Personal, UTCClock, WorkerFactory, load

ReleaserFactory = Callable[..., DeferredReleaser]


@pytest.fixture
def released() -> asyncio.Event:
    return asyncio.Event()


@pytest.fixture
def make_releaser(
    sessionmaker: async_sessionmaker[AsyncSession],
    cipher: ContentCipher,
    clock: UTCClock,
    scheduler: AsyncIOScheduler,
    released: asyncio.Event,
) -> ReleaserFactory:
    def make(**overrides: object) -> DeferredReleaser:
        options: dict[str, object] = {"on_released": released.set, "clock": clock}
        return DeferredReleaser(sessionmaker, cipher, scheduler, **(options | overrides))  # type: ignore[arg-type]

    return make


async def _statuses(sessionmaker: async_sessionmaker[AsyncSession]) -> dict[str, MessageStatus]:
    async with sessionmaker() as session:
        rows = await session.execute(select(Message.id, Message.status))
        return {message_id: status for message_id, status in rows}


async def test_nothing_moves_before_the_window_ends(
    sessionmaker: async_sessionmaker[AsyncSession],
    enqueue: Enqueue,
    make_releaser: ReleaserFactory,
    make_worker: WorkerFactory,
    clock: UTCClock,
) -> None:
    held = await enqueue("later", status=MessageStatus.DEFERRED)
    clock.advance(-1)  # one second before it is due
    assert await make_releaser().release_due() == 0
    assert await make_worker().run_once() == 0
    assert (await load(sessionmaker, held)).status is MessageStatus.DEFERRED


async def test_a_single_held_message_goes_out_alone_with_sound(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    enqueue: Enqueue,
    make_releaser: ReleaserFactory,
    make_worker: WorkerFactory,
    released: asyncio.Event,
) -> None:
    held = await enqueue("backup done", category=Category.SYSTEM, status=MessageStatus.DEFERRED)
    assert await make_releaser().release_due() == 1
    assert released.is_set()  # the worker is woken
    assert await make_worker().run_once() == 1
    sent = (await control.get_chat(personal.chat_id)).bot_messages()[-1]
    assert sent.text == "backup done\n\n#system"
    assert sent.message_thread_id == personal.threads[Category.SYSTEM]
    assert not sent.disable_notification
    message = await load(sessionmaker, held)
    assert message.status is MessageStatus.DELIVERED
    assert message.carried_by is None


async def test_several_held_for_one_topic_become_one_digest(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    enqueue: Enqueue,
    make_releaser: ReleaserFactory,
    make_worker: WorkerFactory,
    clock: UTCClock,
) -> None:
    first = await enqueue(
        "Disk 91% full\nsecond line",
        category=Category.SYSTEM,
        hashtags=("disk",),
        status=MessageStatus.DEFERRED,
        created_offset=-3600,
    )
    second = await enqueue(
        "Deploy finished",
        category=Category.SYSTEM,
        hashtags=("deploy", "disk"),
        status=MessageStatus.DEFERRED,
        created_offset=-60,
    )
    other_topic = await enqueue(
        "New sign-in", category=Category.AUTH, status=MessageStatus.DEFERRED
    )
    before = len((await control.get_chat(personal.chat_id)).bot_messages())

    assert await make_releaser().release_due() == 3
    assert await make_worker().run_once() == 2  # the digest and the lone auth message

    new = (await control.get_chat(personal.chat_id)).bot_messages()[before:]
    assert len(new) == 2
    [digest] = [m for m in new if m.message_thread_id == personal.threads[Category.SYSTEM]]
    text = digest.text or ""
    assert text.startswith("🗞 Digest: 2 messages held during quiet hours")
    assert text.index("Disk 91% full\nsecond line") < text.index("Deploy finished")
    assert text.endswith("#system #disk #deploy")
    assert not digest.disable_notification

    for member in (first, second):
        message = await load(sessionmaker, member)
        assert message.status is MessageStatus.DELIVERED
        assert message.delivered_at == clock()
        assert message.encrypted_content is None
        assert message.carried_by is not None
        [attempt] = message.attempts
        assert attempt.outcome is AttemptOutcome.DELIVERED
        assert attempt.external_id == str(digest.message_id)
    assert message.carried_by is not None
    carrier = await load(sessionmaker, message.carried_by)
    assert carrier.status is MessageStatus.DELIVERED
    assert carrier.sender_token_id is None
    assert carrier.encrypted_content is None
    assert (await load(sessionmaker, other_topic)).carried_by is None
    # What /status shows: the person's three messages, not the gateway's digest as a fourth.
    async with sessionmaker() as session:
        assert await messages.status_counts(session, personal.user_id) == {
            MessageStatus.DELIVERED: 3
        }


async def _three_in_a_refused_digest(
    control: SandboxClient,
    enqueue: Enqueue,
    make_releaser: ReleaserFactory,
    error_code: int,
    refusal: str,
) -> list[str]:
    """Three held messages released into one digest; every send refused from now on."""
    ids = [
        await enqueue(f"alert {n}", status=MessageStatus.DEFERRED, created_offset=n)
        for n in range(3)
    ]
    assert await make_releaser().release_due() == 3
    await control.add_fault("sendMessage", error_code=error_code, description=refusal)
    return ids


async def test_a_refused_digest_sends_its_members_alone_and_each_fails_on_its_own(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    enqueue: Enqueue,
    make_releaser: ReleaserFactory,
    make_worker: WorkerFactory,
) -> None:
    refusal = "Bad Request: can't parse entities: unsupported start tag"
    ids = await _three_in_a_refused_digest(control, enqueue, make_releaser, 400, refusal)
    worker = make_worker()
    assert await worker.run_once() == 1  # the digest, refused: its members are queued again
    assert await worker.run_once() == 3  # each alone, refused too
    for message_id in ids:
        message = await load(sessionmaker, message_id)
        assert message.status is MessageStatus.FAILED
        assert message.carried_by is None
        assert message.failure_reason == "Bad Request: can't parse entities"
        assert message.encrypted_content is None
        assert [a.outcome for a in message.attempts] == [
            AttemptOutcome.RETRY,
            AttemptOutcome.FAILED,
        ]
    sent = [c for c in await control.get_calls() if c.method == "sendMessage"]
    assert [str(c.params["text"]).split("\n")[0] for c in sent[1:]] == [
        f"alert {n}" for n in range(3)
    ]


async def test_a_digest_whose_group_is_gone_fails_the_messages_it_carries(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    enqueue: Enqueue,
    make_releaser: ReleaserFactory,
    make_worker: WorkerFactory,
) -> None:
    """Only a refusal of the digest's content unfolds it: sent alone, each would fail too."""
    refusal = "Forbidden: bot was kicked from the group"
    ids = await _three_in_a_refused_digest(control, enqueue, make_releaser, 403, refusal)
    assert await make_worker().run_once() == 1
    for message_id in ids:
        message = await load(sessionmaker, message_id)
        assert message.status is MessageStatus.FAILED
        assert message.carried_by is not None
        assert message.encrypted_content is None
        assert [a.outcome for a in message.attempts] == [AttemptOutcome.FAILED]


async def test_two_releasers_never_release_a_message_twice(
    sessionmaker: async_sessionmaker[AsyncSession],
    enqueue: Enqueue,
    make_releaser: ReleaserFactory,
) -> None:
    for n in range(4):
        await enqueue(f"m{n}", status=MessageStatus.DEFERRED, created_offset=n)
    results = await asyncio.gather(make_releaser().release_due(), make_releaser().release_due())
    assert sorted(results) == [0, 4]
    async with sessionmaker() as session:
        carriers = await session.scalar(
            select(func.count())
            .select_from(Message)
            .where(
                Message.sender_token_id.is_(None),
                Message.carried_by.is_(None),
                Message.status == MessageStatus.QUEUED,
            )
        )
    assert carriers == 1


async def test_at_start_overdue_messages_are_released_at_once(
    sessionmaker: async_sessionmaker[AsyncSession],
    enqueue: Enqueue,
    make_releaser: ReleaserFactory,
    released: asyncio.Event,
    clock: UTCClock,
) -> None:
    # Held during the night by a gateway that then stopped; this one starts after the window.
    held = await enqueue("while you slept", status=MessageStatus.DEFERRED)
    clock.advance(3600)
    await make_releaser().start()
    async with asyncio.timeout(10):
        await released.wait()
    assert (await load(sessionmaker, held)).status is MessageStatus.QUEUED


async def test_a_release_is_scheduled_for_the_earliest_due_time(
    enqueue: Enqueue,
    make_releaser: ReleaserFactory,
    scheduler: AsyncIOScheduler,
    clock: UTCClock,
) -> None:
    await enqueue("due now", status=MessageStatus.DEFERRED)
    clock.advance(-7200)  # the clock says it is due in two hours
    releaser = make_releaser()
    await releaser.start()
    job = scheduler.get_job(releaser.timer_job)
    assert job is not None
    first = job.next_run_time
    assert abs(first - (datetime.now(UTC) + timedelta(hours=2))) < timedelta(seconds=5)
    # Later submissions only ever move the run earlier.
    releaser.due_at(clock() + timedelta(hours=3))
    assert scheduler.get_job(releaser.timer_job).next_run_time == first
    releaser.due_at(clock() + timedelta(hours=1))
    moved = scheduler.get_job(releaser.timer_job).next_run_time
    assert abs((first - moved) - timedelta(hours=1)) < timedelta(seconds=5)


async def test_an_explicit_topic_and_the_category_topic_make_one_digest(
    control: SandboxClient,
    personal: Personal,
    enqueue: Enqueue,
    make_releaser: ReleaserFactory,
    make_worker: WorkerFactory,
) -> None:
    system = personal.threads[Category.SYSTEM]
    await enqueue("by category", category=Category.SYSTEM, status=MessageStatus.DEFERRED)
    await enqueue(
        "by topic id",
        thread_id=system,
        category=Category.SYSTEM,
        status=MessageStatus.DEFERRED,
        created_offset=1,
    )
    before = len((await control.get_chat(personal.chat_id)).bot_messages())
    await make_releaser().release_due()
    assert await make_worker().run_once() == 1
    [digest] = (await control.get_chat(personal.chat_id)).bot_messages()[before:]
    assert digest.message_thread_id == system
    assert "Digest: 2 messages" in (digest.text or "")


async def test_self_destructing_and_ephemeral_messages_are_never_digested(
    sessionmaker: async_sessionmaker[AsyncSession],
    enqueue: Enqueue,
    make_releaser: ReleaserFactory,
) -> None:
    plain = [
        await enqueue(f"plain {n}", status=MessageStatus.DEFERRED, created_offset=n)
        for n in range(2)
    ]
    special = [
        await enqueue("burns", self_destruct_seconds=60, status=MessageStatus.DEFERRED),
        await enqueue("ephemeral", ephemeral=True, status=MessageStatus.DEFERRED),
    ]
    assert await make_releaser().release_due() == 4
    for message_id in plain:
        assert (await load(sessionmaker, message_id)).carried_by is not None
    for message_id in special:
        message = await load(sessionmaker, message_id)
        assert message.carried_by is None
        assert message.status is MessageStatus.QUEUED


async def test_one_topic_failing_does_not_hold_back_the_others(
    sessionmaker: async_sessionmaker[AsyncSession],
    enqueue: Enqueue,
    make_releaser: ReleaserFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import gateway.deferred

    real = gateway.deferred.compose_digest

    def broken_for_auth(items: Any, zone: Any, **kwargs: Any) -> Any:
        if items[0].category is Category.AUTH:
            raise RuntimeError("a bug in composing")
        return real(items, zone, **kwargs)

    monkeypatch.setattr(gateway.deferred, "compose_digest", broken_for_auth)
    auth = [
        await enqueue(
            f"a{n}", category=Category.AUTH, status=MessageStatus.DEFERRED, created_offset=n
        )
        for n in range(2)
    ]
    system = [
        await enqueue(
            f"s{n}", category=Category.SYSTEM, status=MessageStatus.DEFERRED, created_offset=n
        )
        for n in range(2)
    ]
    assert await make_releaser().release_due() == 2
    for message_id in system:
        assert (await load(sessionmaker, message_id)).status is MessageStatus.QUEUED
    for message_id in auth:  # still held: the next pass tries again
        assert (await load(sessionmaker, message_id)).status is MessageStatus.DEFERRED
