"""Burst coalescing: a personal log's queue beyond its Telegram budget goes out as one digest
per topic, with every message whole, no 429 and no limit broken; small queues, messages already
tried and ephemeral ones are left as they are. Pure parts (budget, grouping, requeue) first,
then the worker against the sandbox with its flood control on at Telegram's own limits, on the
fake clocks of tests/delivery/test_paced_worker.py."""

from __future__ import annotations

import itertools
import os
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.channels.telegram import TelegramChannel
from gateway.content_cipher import ContentCipher
from gateway.delivery import DeliveryWorker, coalesce
from gateway.delivery import worker as worker_module
from gateway.delivery.coalesce import BurstCoalescer, Folded, Queued, plan_folds, requeue
from gateway.delivery.pacing import Pacer, TelegramRates
from gateway.digest import DigestItem, compose_digest
from gateway.outbox_payload import OutboxPayload
from sandbox.client import SandboxClient
from storage.enums import Category, MessageStatus
from storage.models import Message
from storage.repositories import outbox
from tests.delivery.conftest import Enqueue, Personal, UTCClock, load
from tests.delivery.test_paced_worker import add_person, drain, paced, put, sends
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
        (TelegramRates(30, 0, 1), 0, 10.0, 1 + 1 / 1.03 * 10),  # no group limit: the chat's
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


def _payload(thread_id: int | None = None, value: str = "x") -> OutboxPayload:
    return OutboxPayload(kind="text", value=value, thread_id=thread_id)


def _ok(row: Message, payload: OutboxPayload | None = None) -> Queued:
    return Queued(row, payload or _payload(), foldable=True)


def _ids(plans: list[list[tuple[Message, OutboxPayload]]]) -> list[list[str]]:
    return [[row.id for row, _ in plan] for plan in plans]


THREADS: dict[Category, int | None] = {Category.AUTH: 10, Category.GENERAL: None}


def test_plan_folds_groups_by_place_and_chain_and_leaves_singles() -> None:
    queued = [
        _ok(_row(Category.AUTH, 1)),
        _ok(_row(Category.SYSTEM, 2)),  # alone in its place: not folded
        _ok(_row(Category.AUTH, 3), _payload(thread_id=10)),  # explicit topic 10 = auth's
        _ok(_row(Category.GENERAL, 4)),
        _ok(_row(Category.AUTH, 5, ("telegram", "email"))),  # another chain: ends the run
        _ok(_row(Category.GENERAL, 6)),
        _ok(_row(Category.AUTH, 7)),  # folded with m1 and m3, it would go before m5
    ]
    assert _ids(plan_folds(queued, THREADS)) == [["m1", "m3"], ["m4", "m6"]]


def test_a_change_of_chain_starts_the_places_next_run() -> None:
    email = ("telegram", "email")
    queued = [
        _ok(_row(Category.AUTH, 1, email)),
        _ok(_row(Category.AUTH, 2, email)),
        _ok(_row(Category.AUTH, 3)),
        _ok(_row(Category.AUTH, 4)),
        _ok(_row(Category.AUTH, 5, email)),  # alone between two runs: as it is
        _ok(_row(Category.AUTH, 6)),
        _ok(_row(Category.AUTH, 7)),
    ]
    # Each digest takes its oldest member's place: the topic's order stays m1..m7.
    assert _ids(plan_folds(queued, THREADS)) == [["m1", "m2"], ["m3", "m4"], ["m6", "m7"]]


def test_a_message_that_may_not_fold_ends_its_places_run() -> None:
    queued = [
        _ok(_row(Category.AUTH, 1)),
        _ok(_row(Category.AUTH, 2)),
        Queued(_row(Category.AUTH, 3), _payload(), foldable=False),  # e.g. self-destructing
        _ok(_row(Category.AUTH, 4)),  # folding these would put them before m3
        _ok(_row(Category.AUTH, 5)),
        Queued(_row(Category.SYSTEM, 6), None, foldable=False),  # unreadable: its own place
        _ok(_row(Category.GENERAL, 7)),
        _ok(_row(Category.GENERAL, 8)),
    ]
    assert _ids(plan_folds(queued, THREADS)) == [["m1", "m2"], ["m7", "m8"]]


def test_a_long_run_folds_into_digests_of_bounded_size() -> None:
    queued = [_ok(_row(Category.AUTH, n), _payload(value="y" * 40)) for n in range(7)]
    plans = plan_folds(queued, THREADS, max_chars=100)  # two 40-character messages a digest
    assert _ids(plans) == [["m0", "m1"], ["m2", "m3"], ["m4", "m5"]]  # m6 alone stays alone


def test_requeue_puts_each_digest_where_its_first_member_was() -> None:
    queue = [outbox.Candidate(i, 1) for i in ("a", "b", "c", "d")]
    folded = [Folded("D1", ("b", "d")), Folded("D2", ("x", "y"))]
    assert [c.message_id for c in requeue(queue, folded)] == ["a", "D1", "c", "D2"]
    assert requeue(queue, []) == queue


def test_requeue_puts_older_digests_ahead_of_a_newer_one_placed_in_the_run() -> None:
    """A held chat's older messages were put back (due later than its newest, which are all
    the run has): their digests, made first, go ahead of the newest one's."""
    queue = [outbox.Candidate(i, 1) for i in ("n1", "n2")]
    folded = [Folded("D1", ("o1", "o2")), Folded("D2", ("o3",)), Folded("D3", ("n1", "n2"))]
    assert [c.message_id for c in requeue(queue, folded)] == ["D1", "D2", "D3"]
    queue = [outbox.Candidate(i, 1) for i in ("a", "b", "c", "d")]
    folded = [Folded("D1", ("x", "y")), Folded("D2", ("b", "d"))]
    assert [c.message_id for c in requeue(queue, folded)] == ["a", "D1", "D2", "c"]


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


async def test_only_a_few_chats_fold_at_once(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    cipher: ContentCipher,
    clock: UTCClock,
    paced: Callable[..., DeliveryWorker],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A fold holds up to MAX_FOLD messages' content: however many chats the worker serves at
    # once, no more than FOLDS_AT_ONCE of them fold together.
    monkeypatch.setattr(worker_module, "FOLDS_AT_ONCE", 2)
    people = [await add_person(control, sessionmaker, f"P{n}") for n in range(5)]
    for person in people:
        await put(sessionmaker, cipher, clock, person.user_id, [f"m{i}" for i in range(30)])
    worker = paced(TELEGRAM, coalesce_bursts=True, concurrency=5)
    real = BurstCoalescer.fold
    folding: list[int] = [0]
    most: list[int] = [0]

    async def counted(self: BurstCoalescer, *args: Any) -> Any:
        folding[0] += 1
        most[0] = max(most[0], folding[0])
        try:
            return await real(self, *args)
        finally:
            folding[0] -= 1

    monkeypatch.setattr(BurstCoalescer, "fold", counted)
    await worker.run_once()

    assert most[0] == 2  # two at a time: bounded, and still more than one
    async with sessionmaker() as session:
        carried = await session.scalar(select(func.count()).where(Message.carried_by.is_not(None)))
    assert carried == 5 * 30  # every chat's burst folded whole


async def _thirty_in_chunks_of_seven(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    cipher: ContentCipher,
    clock: UTCClock,
    paced: Callable[..., DeliveryWorker],
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[list[str | None], list[str]]:
    """30 messages m0..m29 queued and one run of a worker that folds seven at a time: each
    message's carrier, and the numbers of the messages in the first Telegram message sent."""
    monkeypatch.setattr(coalesce, "MAX_FOLD", 7)
    await control.set_flood(enabled=True, group_per_minute=20, global_per_second=30)
    ids = await put(sessionmaker, cipher, clock, personal.user_id, [f"m{i}" for i in range(30)])
    await paced(TELEGRAM, coalesce_bursts=True).run_once()
    carriers = [(await load(sessionmaker, message_id)).carried_by for message_id in ids]
    first = (await sends(control))[0].params["text"]
    return carriers, re.findall(r"\bm(\d+)\b", first)


async def test_a_burst_longer_than_one_chunk_folds_whole_in_one_run(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    cipher: ContentCipher,
    clock: UTCClock,
    paced: Callable[..., DeliveryWorker],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fold reads, folds and commits `MAX_FOLD` messages at a time and goes on with the next
    (it stopped after the first: the rest stood due, ahead of other chats' newer messages)."""
    carriers, first_digest = await _thirty_in_chunks_of_seven(
        sessionmaker, control, personal, cipher, clock, paced, monkeypatch
    )

    assert None not in carriers
    # Seven to a digest, in order: 7 + 7 + 7 + 7 + 2.
    runs = [len(list(group)) for _, group in itertools.groupby(carriers)]
    assert runs == [7, 7, 7, 7, 2]
    assert first_digest == [str(n) for n in range(7)]  # the oldest seven, in order


async def test_a_fold_that_fails_past_its_first_chunk_sends_what_it_folded(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    cipher: ContentCipher,
    clock: UTCClock,
    paced: Callable[..., DeliveryWorker],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each chunk is committed: when a later one fails, the digests made are the run's queue
    still (the first goes out), and the rest stays as it was."""
    real_waiting_of = outbox.waiting_of
    reads = 0

    async def failing_third(session: AsyncSession, *args: Any) -> list[Message]:
        nonlocal reads
        reads += 1
        if reads == 3:
            raise RuntimeError("the database went away")
        return await real_waiting_of(session, *args)

    monkeypatch.setattr(outbox, "waiting_of", failing_third)
    carriers, first_digest = await _thirty_in_chunks_of_seven(
        sessionmaker, control, personal, cipher, clock, paced, monkeypatch
    )

    assert carriers[14:] == [None] * 16
    assert [len(list(group)) for _, group in itertools.groupby(carriers[:14])] == [7, 7]
    assert first_digest == [str(n) for n in range(7)]


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
    # Three are within the budget: the first goes, the chat's one a second holds the others.
    await worker.run_once()
    rest = [f"later {i:02d}" for i in range(40)]
    await put(sessionmaker, cipher, clock, personal.user_id, rest)

    await drain(worker, sessionmaker, clock, fake_clock)

    calls = await sends(control)
    assert {c.status for c in calls} == {200}
    # The first alone, then everything that piled up while the chat waited in one digest, in
    # the order it was sent.
    assert len(calls) == 2
    assert (await load(sessionmaker, first[0])).carried_by is None
    digest = calls[1].params["text"]
    order = [digest.index(f"{text}\n") for text in ["early 1", "early 2", *rest]]
    assert order == sorted(order)


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
    # After the others: a message that may not fold ends its topic's run (see plan_folds).
    ephemeral = await enqueue(
        "one-time code", category=Category.AUTH, ephemeral=True, created_offset=20
    )
    self_destruct = await enqueue(
        "pin", category=Category.AUTH, self_destruct_seconds=600, created_offset=21
    )

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
        waiting = await outbox.waiting_of(session, personal.user_id, clock(), 100)
    assert [m.id for m in waiting] == ids[2:]


async def test_a_digest_takes_its_oldest_members_place_and_short_lived_ones_stay_out(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    cipher: ContentCipher,
    clock: UTCClock,
    enqueue: Enqueue,
) -> None:
    ids = [await enqueue(f"login {i}", created_offset=i - 60) for i in range(4)]
    async with sessionmaker() as session, session.begin():
        # Its retention ends within the hour: a digest (the longest retention of its members)
        # must not carry it past that.
        short = await session.get(Message, ids[3])
        assert short is not None
        short.retention_expires_at = clock() + timedelta(minutes=30)
    coalescer = BurstCoalescer(sessionmaker, cipher, clock)

    [folded] = await coalescer.fold(personal.user_id, 4, lambda chat, group: 1.0)

    assert folded.member_ids == tuple(ids[:3])
    digest = await load(sessionmaker, folded.carrier_id)
    first = await load(sessionmaker, ids[0])
    assert digest.created_at == first.created_at  # the oldest member's place in the queue
    assert digest.next_attempt_at <= clock()
    assert (await load(sessionmaker, ids[3])).carried_by is None
    # Within the budget nothing folds.
    assert await coalescer.fold(personal.user_id, 4, lambda chat, group: 4.0) == []


async def test_a_topics_order_holds_around_a_message_that_goes_alone(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    clock: UTCClock,
    fake_clock: FakeClock,
    enqueue: Enqueue,
    paced: Callable[..., DeliveryWorker],
) -> None:
    await control.set_flood(enabled=True, group_per_minute=20, global_per_second=30)
    for i in range(3):
        await enqueue(f"login {i}", category=Category.AUTH, created_offset=i)
    await enqueue("pin", category=Category.AUTH, self_destruct_seconds=600, created_offset=3)
    for i in range(3, 10):
        await enqueue(f"login {i}", category=Category.AUTH, created_offset=i + 1)

    await drain(paced(TELEGRAM, coalesce_bursts=True), sessionmaker, clock, fake_clock)

    shown = await _texts(control, personal.chat_id)
    order = [shown.index(f"{text}\n") for text in ["login 0", "login 2", "pin", "login 3"]]
    assert order == sorted(order)
    assert len(await sends(control)) < 10  # still folded, around the pin


async def test_a_digest_telegram_refuses_is_unfolded_and_its_members_go_one_by_one(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    cipher: ContentCipher,
    clock: UTCClock,
    fake_clock: FakeClock,
    paced: Callable[..., DeliveryWorker],
) -> None:
    """One refused digest failed every message it carried (hundreds, for one bad one): now
    they go back to the queue, keep their own content, and go alone (never folded again)."""
    refusal = "Bad Request: can't parse entities: unsupported start tag"
    ids = await _refused_burst(sessionmaker, control, personal, cipher, clock, paced, refusal)
    texts = [f"m{i}" for i in range(10)]

    await drain(paced(TELEGRAM, coalesce_bursts=True), sessionmaker, clock, fake_clock)

    calls = await sends(control, personal.chat_id)
    assert [c.status for c in calls] == [400] + [200] * len(texts)
    assert all(text in str(calls[0].params["text"]) for text in texts)  # the digest
    assert [str(c.params["text"]).split("\n")[0] for c in calls[1:]] == texts  # alone, in order
    for message_id in ids:
        message = await load(sessionmaker, message_id)
        assert message.status is MessageStatus.DELIVERED
        assert message.carried_by is None
        assert message.encrypted_content is None  # wiped at delivery, as always
        first, last = message.attempts
        assert first.error is not None
        assert "digest" in first.error
        assert "entities" in first.error
        assert last.external_id
    async with sessionmaker() as session:
        [digest] = await session.scalars(
            select(Message).where(Message.sender_token_id.is_(None), Message.id.not_in(ids))
        )
    assert digest.status is MessageStatus.FAILED
    assert digest.failure_reason is not None
    assert "one by one" in digest.failure_reason
    assert digest.encrypted_content is None


async def test_members_keep_their_content_until_their_digest_settles(
    sessionmaker: async_sessionmaker[AsyncSession],
    cipher: ContentCipher,
    clock: UTCClock,
    personal: Personal,
) -> None:
    ids = await put(sessionmaker, cipher, clock, personal.user_id, ["one", "two", "three"])
    coalescer = BurstCoalescer(sessionmaker, cipher, clock)
    folded = await coalescer.fold(personal.user_id, 3, lambda chat_id, is_group: 1.0)
    assert [f.member_ids for f in folded] == [tuple(ids)]
    for message_id in ids:
        message = await load(sessionmaker, message_id)
        assert message.carried_by == folded[0].carrier_id
        assert message.encrypted_content is not None


async def _refused_burst(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    cipher: ContentCipher,
    clock: UTCClock,
    paced: Callable[..., DeliveryWorker],
    refusal: str,
) -> list[str]:
    """Ten messages folded into a digest whose first send Telegram answers with a 400 saying
    `refusal` (once); the worker's first run. Returns the messages' ids."""
    await control.set_flood(enabled=True, group_per_minute=20, global_per_second=30)
    ids = await put(sessionmaker, cipher, clock, personal.user_id, [f"m{i}" for i in range(10)])
    await control.add_fault("sendMessage", error_code=400, description=refusal, times=1)
    await paced(TELEGRAM, coalesce_bursts=True).run_once()
    return ids


async def test_a_digest_refused_for_the_groups_sake_fails_the_messages_it_carries(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    cipher: ContentCipher,
    clock: UTCClock,
    paced: Callable[..., DeliveryWorker],
) -> None:
    """Sent alone, each would be refused just the same (and the burst would take the group
    an hour at 20 a minute): only a refusal of the text unfolds a digest."""
    refusal = "Bad Request: not enough rights to send text messages to the chat"
    ids = await _refused_burst(sessionmaker, control, personal, cipher, clock, paced, refusal)
    for message_id in ids:
        message = await load(sessionmaker, message_id)
        assert message.status is MessageStatus.FAILED
        assert message.carried_by is not None
        assert message.encrypted_content is None
    assert len(await sends(control, personal.chat_id)) == 1


async def test_a_member_without_content_of_its_own_fails_with_its_refused_digest(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    cipher: ContentCipher,
    clock: UTCClock,
    paced: Callable[..., DeliveryWorker],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Folded before members kept their content, it has nothing to go alone with."""
    fold = outbox.fold

    async def fold_then_wipe_the_first(
        session: AsyncSession, message_ids: Any, carrier_id: str, now: datetime
    ) -> bool:
        done = await fold(session, message_ids, carrier_id, now)
        await session.execute(
            update(Message).where(Message.id == message_ids[0]).values(encrypted_content=None)
        )
        return done

    monkeypatch.setattr(outbox, "fold", fold_then_wipe_the_first)
    refusal = "Bad Request: can't parse entities: unsupported start tag"
    ids = await _refused_burst(sessionmaker, control, personal, cipher, clock, paced, refusal)
    first = await load(sessionmaker, ids[0])
    assert first.status is MessageStatus.FAILED
    assert first.carried_by is not None
    for message_id in ids[1:]:
        message = await load(sessionmaker, message_id)
        assert message.status is MessageStatus.QUEUED
        assert message.carried_by is None
        assert message.encrypted_content is not None


async def _long_burst_part_one_sent(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    cipher: ContentCipher,
    clock: UTCClock,
    fake_clock: FakeClock,
    paced: Callable[..., DeliveryWorker],
) -> tuple[list[str], DeliveryWorker]:
    """Ten long messages folded into a digest of two parts, its first part sent and the second
    held for the chat's one a second, the clocks moved on to when it may go; (their ids, the
    worker)."""
    await control.set_flood(enabled=True, group_per_minute=20, global_per_second=30)
    texts = [f"m{i} " + "word " * 140 for i in range(10)]
    ids = await put(sessionmaker, cipher, clock, personal.user_id, texts)
    worker = paced(TELEGRAM, coalesce_bursts=True)
    await worker.run_once()
    [first] = await sends(control, personal.chat_id)
    assert str(first.params["text"]).startswith("(1/2)")
    clock.advance(2)
    fake_clock.advance(2)
    return ids, worker


async def _failed_with_their_digest(
    sessionmaker: async_sessionmaker[AsyncSession], ids: list[str]
) -> None:
    for message_id in ids:
        message = await load(sessionmaker, message_id)
        assert message.status is MessageStatus.FAILED
        assert message.carried_by is not None


async def test_a_digest_refused_after_its_first_part_went_out_is_not_unfolded(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    cipher: ContentCipher,
    clock: UTCClock,
    fake_clock: FakeClock,
    paced: Callable[..., DeliveryWorker],
) -> None:
    """Some of its messages were shown already: sent alone they would come twice."""
    ids, worker = await _long_burst_part_one_sent(
        sessionmaker, control, personal, cipher, clock, fake_clock, paced
    )
    refusal = "Bad Request: message is too long"
    await control.add_fault("sendMessage", error_code=400, description=refusal, times=1)
    await worker.run_once()
    await _failed_with_their_digest(sessionmaker, ids)


@pytest.mark.parametrize("part_sent", [False, True])
async def test_a_digest_that_does_not_render_is_unfolded_unless_a_part_went_out(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    cipher: ContentCipher,
    clock: UTCClock,
    fake_clock: FakeClock,
    paced: Callable[..., DeliveryWorker],
    monkeypatch: pytest.MonkeyPatch,
    part_sent: bool,
) -> None:
    render = TelegramChannel.render

    def no_digest(
        self: TelegramChannel, payload: OutboxPayload, category: Category, owner: str = ""
    ) -> list[str]:
        if str(payload.value).startswith("🗞"):
            raise ValueError("no digest renders")
        return render(self, payload, category, owner)

    if part_sent:
        ids, worker = await _long_burst_part_one_sent(
            sessionmaker, control, personal, cipher, clock, fake_clock, paced
        )
        monkeypatch.setattr(TelegramChannel, "render", no_digest)
        await worker.run_once()
        await _failed_with_their_digest(sessionmaker, ids)
        return
    monkeypatch.setattr(TelegramChannel, "render", no_digest)
    ids = await put(sessionmaker, cipher, clock, personal.user_id, [f"m{i}" for i in range(10)])
    await control.set_flood(enabled=True, group_per_minute=20, global_per_second=30)
    await drain(paced(TELEGRAM, coalesce_bursts=True), sessionmaker, clock, fake_clock)
    for message_id in ids:
        message = await load(sessionmaker, message_id)
        assert message.status is MessageStatus.DELIVERED
        assert message.carried_by is None
    assert len(await sends(control, personal.chat_id)) == len(ids)
