"""Burst coalescing: a personal log's queue beyond its Telegram budget goes out as one digest
per topic, with every message whole, no 429 and no limit broken; small queues, messages already
tried and ephemeral ones are left as they are. Pure parts (budget, grouping, requeue) first,
then the worker against the sandbox with its flood control on at Telegram's own limits, on the
fake clocks of tests/delivery/test_paced_worker.py."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.content_cipher import ContentCipher
from gateway.delivery import DeliveryWorker
from gateway.delivery.coalesce import Folded, plan_folds, requeue
from gateway.delivery.pacing import Pacer, TelegramRates
from gateway.digest import DigestItem, compose_digest
from gateway.outbox_payload import OutboxPayload
from sandbox.client import SandboxClient
from storage.enums import Category, MessageStatus
from storage.models import Message
from storage.repositories import outbox
from tests.delivery.conftest import Enqueue, Personal, UTCClock, load
from tests.delivery.test_paced_worker import drain, paced, put, sends
from tests.sandbox.conftest import FakeClock

__all__ = ["paced"]  # the fixture, shared with the pacing tests
pytestmark = pytest.mark.both_databases

TELEGRAM = TelegramRates()  # 30 a second, 20 a minute per group, 1 a second per chat


# --- pure parts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rates", "spent", "horizon", "expected"),
    [
        # A fresh group: its burst of 3 plus 18/61 a second over the horizon.
        (TELEGRAM, 0, 10.0, 3 + 18 / 61 * 10),
        # The burst spent (no chat or global limit in the way here): only the refill.
        (TelegramRates(0, 20, 0), 3, 10.0, 18 / 61 * 10),
        (TELEGRAM, 0, 0.0, 1.0),  # right now the chat's one a second is the tighter
        (TelegramRates(30, 0, 1), 0, 10.0, 1 + 1 / 1.05 * 10),  # no group limit: the chat's
        (TelegramRates(30, 0, 0), 0, 10.0, float("inf")),  # no limit at all: never folds
    ],
)
def test_budget_is_what_the_chat_and_group_buckets_grant_soon(
    rates: TelegramRates, spent: int, horizon: float, expected: float
) -> None:
    pacer = Pacer(rates, now=0.0)
    for _ in range(spent):
        assert pacer.reserve(-5, True, 0.0) == 0
    assert pacer.budget(-5, True, 0.0, horizon) == pytest.approx(expected)
    assert pacer.tracked_chats() == (1 if spent else 0)  # asking creates no buckets


def test_budget_is_zero_while_a_429_blocks_the_chat() -> None:
    pacer = Pacer(TELEGRAM, now=0.0)
    pacer.penalise(-5, 0.0, retry_after=30)
    assert pacer.budget(-5, True, 0.0, 10.0) == 0
    assert pacer.budget(-5, True, 0.0, 40.0) > 0


def _row(category: Category, created: int, channels: tuple[str, ...] = ("telegram",)) -> Message:
    return Message(
        id=f"m{created}",
        recipient_id=1,
        category=category,
        created_at=datetime(2030, 1, 1, tzinfo=UTC) + timedelta(seconds=created),
        channels=list(channels),
    )


def _payload(thread_id: int | None = None) -> OutboxPayload:
    return OutboxPayload(kind="text", value="x", thread_id=thread_id)


def test_plan_folds_groups_by_place_and_chain_and_leaves_singles() -> None:
    threads: dict[Category, int | None] = {Category.AUTH: 10, Category.GENERAL: None}
    rows = [
        (_row(Category.AUTH, 1), _payload()),
        (_row(Category.SYSTEM, 2), _payload()),  # alone in its place: not folded
        (_row(Category.AUTH, 3), _payload(thread_id=10)),  # explicit topic 10 = auth's topic
        (_row(Category.GENERAL, 4), _payload()),
        (_row(Category.AUTH, 5, ("telegram", "email")), _payload()),  # another chain, alone
        (_row(Category.GENERAL, 6), _payload()),
        (_row(Category.AUTH, 7), _payload()),
    ]
    plans = plan_folds(rows, threads)
    assert [[row.id for row, _ in plan] for plan in plans] == [["m1", "m3", "m7"], ["m4", "m6"]]


def test_requeue_puts_each_digest_where_its_first_member_was() -> None:
    queue = [outbox.Candidate(i, 1) for i in ("a", "b", "c", "d")]
    folded = [Folded("D1", ("b", "d")), Folded("D2", ("x", "y"))]
    assert [c.message_id for c in requeue(queue, folded)] == ["a", "D1", "c", "D2"]
    assert requeue(queue, []) == queue


def test_a_burst_digest_keeps_every_message_whole_with_its_second() -> None:
    zone = __import__("zoneinfo").ZoneInfo("Europe/Berlin")
    at = datetime(2030, 1, 1, 11, 0, 5, tzinfo=UTC)
    long = "line\n" * 50 + "the end"
    items = [
        DigestItem(at, Category.SYSTEM, OutboxPayload(kind="markdown", value="**disk** full")),
        DigestItem(
            at + timedelta(seconds=2), Category.SYSTEM, OutboxPayload(kind="text", value=long)
        ),
    ]
    payload = compose_digest(items, zone, why="arrived in a burst", full=True, silent=True)
    assert "2 messages</b> arrived in a burst" in payload.value
    assert "<b>12:00:05</b> <b>disk</b> full" in payload.value
    assert "<b>12:00:07</b> " + long in payload.value  # not cut to its first lines
    assert payload.silent


# --- the worker, against the sandbox's flood control -----------------------------------------


async def _texts(control: SandboxClient, chat_id: int) -> str:
    return "\n".join(m.text or "" for m in (await control.get_chat(chat_id)).bot_messages())


async def test_a_burst_of_500_becomes_a_handful_of_messages_without_a_429(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    cipher: ContentCipher,
    clock: UTCClock,
    fake_clock: FakeClock,
    paced: Callable[..., DeliveryWorker],
) -> None:
    await control.set_flood(enabled=True, group_per_minute=20, global_per_second=30)
    texts = [f"alert {i:03d} on host-{i % 7}" for i in range(500)]
    ids = await put(sessionmaker, cipher, clock, personal.user_id, texts)
    start = clock()
    worker = paced(TELEGRAM, coalesce_bursts=True)

    await drain(worker, sessionmaker, clock, fake_clock)

    calls = await sends(control)
    assert {c.status for c in calls} == {200}
    # 500 lines of ~30 characters: a few 4096-character parts instead of 500 messages.
    assert 2 <= len(calls) <= 6
    shown = await _texts(control, personal.chat_id)
    for text in texts:
        assert len(re.findall(re.escape(text) + r"\b", shown)) == 1, text
    # The group's 20 a minute would have taken 25 minutes; the parts went within seconds.
    assert clock() - start < timedelta(seconds=30)
    carriers = set()
    for message_id in ids:
        message = await load(sessionmaker, message_id)
        assert message.status is MessageStatus.DELIVERED
        assert message.carried_by is not None
        assert message.encrypted_content is None
        assert message.attempts[-1].external_id  # where it landed
        carriers.add(message.carried_by)
    assert len(carriers) == 1
    digest = await load(sessionmaker, carriers.pop())
    assert digest.status is MessageStatus.DELIVERED
    assert digest.encrypted_content is None or digest.carried_by is None


async def test_a_queue_within_the_budget_goes_out_message_by_message(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    cipher: ContentCipher,
    clock: UTCClock,
    fake_clock: FakeClock,
    paced: Callable[..., DeliveryWorker],
) -> None:
    await control.set_flood(enabled=True, group_per_minute=20, global_per_second=30)
    ids = await put(sessionmaker, cipher, clock, personal.user_id, ["one", "two", "three"])
    await drain(paced(TELEGRAM, coalesce_bursts=True), sessionmaker, clock, fake_clock)

    assert len(await sends(control)) == 3
    for message_id in ids:
        assert (await load(sessionmaker, message_id)).carried_by is None


async def test_a_stream_folds_what_piles_up_while_the_group_waits(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    cipher: ContentCipher,
    clock: UTCClock,
    fake_clock: FakeClock,
    paced: Callable[..., DeliveryWorker],
) -> None:
    await control.set_flood(enabled=True, group_per_minute=20, global_per_second=30)
    worker = paced(TELEGRAM, coalesce_bursts=True)
    first = await put(
        sessionmaker, cipher, clock, personal.user_id, [f"early {i}" for i in range(3)]
    )
    await worker.run_once()  # the group's burst of three goes out as it is
    rest = [f"later {i:02d}" for i in range(40)]
    await put(sessionmaker, cipher, clock, personal.user_id, rest)

    await drain(worker, sessionmaker, clock, fake_clock)

    calls = await sends(control)
    assert {c.status for c in calls} == {200}
    assert len(calls) == 4  # three alone, then the forty in one digest
    for message_id in first:
        assert (await load(sessionmaker, message_id)).carried_by is None
    shown = await _texts(control, personal.chat_id)
    assert all(f"{text}\n" in shown + "\n" for text in rest)


async def test_only_untried_digestible_messages_fold_each_topic_apart(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    clock: UTCClock,
    fake_clock: FakeClock,
    enqueue: Enqueue,
    paced: Callable[..., DeliveryWorker],
) -> None:
    await control.set_flood(enabled=True, group_per_minute=20, global_per_second=30)
    auth = [await enqueue(f"login {i}", category=Category.AUTH, created_offset=i) for i in range(6)]
    system = [
        await enqueue(f"disk {i}", category=Category.SYSTEM, created_offset=10 + i)
        for i in range(4)
    ]
    ephemeral = await enqueue("one-time code", category=Category.AUTH, ephemeral=True)
    self_destruct = await enqueue("pin", category=Category.AUTH, self_destruct_seconds=600)

    await drain(paced(TELEGRAM, coalesce_bursts=True), sessionmaker, clock, fake_clock)

    calls = await sends(control)
    assert {c.status for c in calls} == {200}
    # One digest per topic, in that topic; the two that must be deleted alone went alone.
    assert len(calls) == 4
    auth_carriers = {(await load(sessionmaker, i)).carried_by for i in auth}
    system_carriers = {(await load(sessionmaker, i)).carried_by for i in system}
    assert len(auth_carriers) == len(system_carriers) == 1
    assert auth_carriers != system_carriers
    for alone in (ephemeral, self_destruct):
        message = await load(sessionmaker, alone)
        assert message.carried_by is None
        assert message.status is MessageStatus.DELIVERED
    threads = {c.params.get("message_thread_id") for c in calls}
    assert threads == {
        personal.threads[Category.AUTH],
        personal.threads[Category.SYSTEM],
    }


async def test_folding_loses_the_race_to_a_claim_and_changes_nothing(
    sessionmaker: async_sessionmaker[AsyncSession],
    cipher: ContentCipher,
    clock: UTCClock,
    personal: Personal,
) -> None:
    ids = await put(sessionmaker, cipher, clock, personal.user_id, ["a", "b", "c"])
    async with sessionmaker() as session:
        assert await outbox.claim(session, ids[1], clock(), clock() + timedelta(seconds=60))
        await session.commit()
        digest = Message(
            id=str(uuid.uuid4()),
            recipient_id=personal.user_id,
            category=Category.GENERAL,
            priority=(await load(sessionmaker, ids[0])).priority,
            status=MessageStatus.QUEUED,
            encrypted_content=os.urandom(8),
            created_at=clock(),
            next_attempt_at=clock(),
            retention_expires_at=clock() + timedelta(days=1),
        )
        session.add(digest)
        await session.flush()
        assert not await outbox.fold(session, ids, digest.id, clock())
        await session.rollback()
    async with sessionmaker() as session:
        carried = await session.scalars(select(Message.id).where(Message.carried_by.is_not(None)))
        assert list(carried) == []
    assert (await load(sessionmaker, ids[0])).encrypted_content is not None


async def test_a_quiet_hours_digest_is_never_folded_into_a_burst_digest(
    sessionmaker: async_sessionmaker[AsyncSession],
    cipher: ContentCipher,
    clock: UTCClock,
    personal: Personal,
) -> None:
    ids = await put(sessionmaker, cipher, clock, personal.user_id, ["a", "b", "c", "d"])
    async with sessionmaker() as session:
        # "a" carries "b", as a released quiet-hours digest would.
        b = await session.get(Message, ids[1])
        assert b is not None
        b.carried_by, b.encrypted_content = ids[0], None
        await session.commit()
        foldable = await outbox.foldable(session, personal.user_id, clock(), 100)
    assert [m.id for m in foldable] == ids[2:]
