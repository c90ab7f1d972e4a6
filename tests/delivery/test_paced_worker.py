"""The worker paces Telegram sends: against the sandbox with its flood control on, streams go out
complete with no 429 and no limit broken; one chat waiting never holds up another; urgent and
high messages go first.

Most tests move two fake clocks together, the worker's (`clock`) and the sandbox's monotonic
one (`fake_clock`, which its flood control measures), and run the worker with one slot
(`concurrency=1`) so every send reaches the sandbox at the fake time it was granted: the
outcome is exact and the same on every run. `TestRealTime` runs the worker as deployed
(parallel chats, real sleeps, real clocks) against a sandbox measuring real time.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import astuple, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.cli import _gateway_config
from gateway.content_cipher import ContentCipher, new_key_text
from gateway.delivery import DeliveryWorker
from gateway.delivery import worker as worker_module
from gateway.delivery.claim import Claim, Claimed
from gateway.delivery.elsewhere import Elsewhere
from gateway.delivery.pacing import SHORT_MARGIN, Pacer, TelegramRates
from gateway.delivery.worker import PacedSends, chats_at_once, patience_for
from gateway.outbox_payload import OutboxPayload
from gateway.runtime import GatewayConfig, build_gateway
from gateway.settings import SettingsError, load_settings
from sandbox.client import CallView, SandboxClient
from sandbox.state import DEFAULT_BOT_TOKEN
from storage.enums import AttemptOutcome, Category, Channel, MessageStatus, Priority
from storage.models import LogGroup, Message, User
from storage.repositories import outbox
from tests.delivery.conftest import Personal, UTCClock, WorkerFactory, load
from tests.delivery.test_pacing import most_in_window
from tests.sandbox.conftest import FakeClock

Clock = Callable[[], datetime]
_queued_order = itertools.count(1)  # created_at tiebreak: messages queued later sort later


@dataclass
class Person:
    user_id: int  # database id
    chat_id: int  # their personal log group in the sandbox


async def add_person(
    control: SandboxClient, sessionmaker: async_sessionmaker[AsyncSession], name: str
) -> Person:
    """A person with a linked (non-forum) personal log group where the bot is an admin."""
    telegram_id = await control.create_user(name)
    chat_id = await control.create_group(f"{name}'s log", owner_id=telegram_id)
    await control.set_bot_membership(chat_id, by_id=telegram_id, status="administrator")
    async with sessionmaker() as session, session.begin():
        user = User(telegram_id=telegram_id)
        session.add(user)
        await session.flush()
        session.add(LogGroup(chat_id=chat_id, owner_id=user.id, is_forum=False))
    return Person(user.id, chat_id)


async def put(
    sessionmaker: async_sessionmaker[AsyncSession],
    cipher: ContentCipher,
    clock: Clock,
    user_id: int,
    texts: Sequence[str],
    *,
    priority: Priority = Priority.NORMAL,
    channels: Sequence[Channel] = (Channel.TELEGRAM,),
) -> list[str]:
    """Queue messages (General topic), due now, in the order given (also across calls);
    returns their ids."""
    ids = []
    async with sessionmaker() as session, session.begin():
        for text in texts:
            message_id = str(uuid.uuid4())
            payload = OutboxPayload.from_dict({"kind": "text", "value": text})
            created = clock() + timedelta(microseconds=next(_queued_order))
            session.add(
                Message(
                    id=message_id,
                    recipient_id=user_id,
                    category=Category.GENERAL,
                    priority=priority,
                    status=MessageStatus.QUEUED,
                    encrypted_content=cipher.seal(message_id, payload.to_dict()),
                    created_at=created,
                    next_attempt_at=clock(),
                    retention_expires_at=created + timedelta(days=1),
                    channels=[c.value for c in channels],
                )
            )
            ids.append(message_id)
    return ids


async def lease_run_out(
    sessionmaker: async_sessionmaker[AsyncSession], clock: Clock, message_ids: Sequence[str]
) -> None:
    """Make these messages look claimed by a worker that crashed: sending, the lease run out."""
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Message)
            .where(Message.id.in_(message_ids))
            .values(status=MessageStatus.SENDING, claimed_until=clock() - timedelta(seconds=1))
        )


async def put_labelled(
    sessionmaker: async_sessionmaker[AsyncSession],
    cipher: ContentCipher,
    clock: UTCClock,
    user_id: int,
    queued: Sequence[tuple[str, str]],
) -> dict[str, str]:
    """Queue a message per (priority, label), a second apart in that order; id -> label."""
    labels: dict[str, str] = {}
    for priority, label in queued:
        [message_id] = await put(
            sessionmaker, cipher, clock, user_id, [label], priority=Priority(priority)
        )
        labels[message_id] = label
        clock.advance(1)
    return labels


def fake_sleep(clock: UTCClock, fake_clock: FakeClock) -> Callable[[float], Awaitable[None]]:
    """The worker's in-place pacing waits: both fake clocks move instead."""

    async def sleep(seconds: float) -> None:
        clock.advance(seconds)
        fake_clock.advance(seconds)
        await asyncio.sleep(0)

    return sleep


async def drain(
    worker: DeliveryWorker,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: UTCClock,
    fake_clock: FakeClock,
    *,
    max_runs: int = 2000,
) -> int:
    """Run the worker until the outbox is empty, moving both clocks to each wakeup; returns
    how many runs it took."""
    for runs in range(1, max_runs + 1):
        await worker.run_once()
        async with sessionmaker() as session:
            wakeup = await outbox.next_wakeup(session)
        if wakeup is None:
            return runs
        delay = (wakeup - clock()).total_seconds()
        if delay > 0:
            clock.advance(delay)
            fake_clock.advance(delay)
    raise AssertionError("the outbox did not drain")


async def sends(control: SandboxClient, chat_id: int | None = None) -> list[CallView]:
    calls = [c for c in await control.get_calls() if c.method == "sendMessage"]
    if chat_id is not None:
        calls = [c for c in calls if int(c.params["chat_id"]) == chat_id]
    return calls


async def queued(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    async with sessionmaker() as session:
        count = await session.scalar(
            select(func.count()).where(Message.status != MessageStatus.DELIVERED)
        )
        return int(count or 0)


async def texts_in(control: SandboxClient, chat_id: int) -> list[str]:
    """The bot's messages in the chat, first lines only (the hashtag line follows)."""
    messages = (await control.get_chat(chat_id)).bot_messages()
    return [(m.text or "").split("\n")[0] for m in messages]


@pytest.fixture
def paced(
    make_worker: WorkerFactory, clock: UTCClock, fake_clock: FakeClock
) -> Callable[..., DeliveryWorker]:
    """A paced worker with one slot whose short waits move the fake clocks."""

    def make(rates: TelegramRates, **overrides: Any) -> DeliveryWorker:
        options: dict[str, Any] = {
            "rates": rates,
            "concurrency": 1,
            "sleep": fake_sleep(clock, fake_clock),
        }
        return make_worker(**(options | overrides))

    return make


# --- against the sandbox's flood control -----------------------------------------------------


async def test_a_stream_to_one_group_arrives_whole_without_a_429(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    cipher: ContentCipher,
    clock: UTCClock,
    fake_clock: FakeClock,
    paced: Callable[..., DeliveryWorker],
) -> None:
    # Sixty a minute (instead of Telegram's twenty, to keep the test short), enforced by the
    # sandbox at exactly the limit the worker paces to.
    await control.set_flood(enabled=True, group_per_minute=60, global_per_second=10)
    texts = [f"event {i:03d}" for i in range(90)]
    await put(sessionmaker, cipher, clock, personal.user_id, texts)
    start = clock()
    worker = paced(TelegramRates(global_per_second=10, group_per_minute=60, chat_per_second=0))

    await drain(worker, sessionmaker, clock, fake_clock)

    calls = await sends(control)
    assert [c.status for c in calls] == [200] * 90  # no 429, so no limit was ever broken
    assert await texts_in(control, personal.chat_id) == texts  # all of them, in order
    times = [c.time for c in calls]
    assert most_in_window(times, 60.0) <= 60  # in every minute, wherever it starts
    # ... and close to the limit: 90 messages in about a minute and a half.
    elapsed = (clock() - start).total_seconds()
    assert 80 < elapsed < 95


async def test_many_groups_together_keep_to_the_global_limit(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    cipher: ContentCipher,
    clock: UTCClock,
    fake_clock: FakeClock,
    paced: Callable[..., DeliveryWorker],
) -> None:
    people = [Person(personal.user_id, personal.chat_id)]
    people += [await add_person(control, sessionmaker, f"P{i}") for i in range(5)]
    await control.set_flood(enabled=True, group_per_minute=600, global_per_second=5)
    for person in people:
        await put(sessionmaker, cipher, clock, person.user_id, [f"n{i}" for i in range(15)])
    start = clock()
    worker = paced(TelegramRates(global_per_second=5, group_per_minute=600, chat_per_second=0))

    await drain(worker, sessionmaker, clock, fake_clock)

    calls = await sends(control)
    assert len(calls) == 90
    assert {c.status for c in calls} == {200}
    assert most_in_window([c.time for c in calls], 1.0) <= 5
    for person in people:
        assert await texts_in(control, person.chat_id) == [f"n{i}" for i in range(15)]
    elapsed = (clock() - start).total_seconds()
    assert elapsed < 90 / (5 * 0.9)  # the global budget is used: at least 90 % of it


async def test_a_long_message_is_paced_part_by_part(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    cipher: ContentCipher,
    clock: UTCClock,
    fake_clock: FakeClock,
    paced: Callable[..., DeliveryWorker],
) -> None:
    await control.set_flood(enabled=True, group_per_minute=2)
    long_text = "\n".join(f"line {i:05d} of the build log" for i in range(400))  # three parts
    [long_id] = await put(sessionmaker, cipher, clock, personal.user_id, [long_text])
    [after_id] = await put(sessionmaker, cipher, clock, personal.user_id, ["after the log"])
    worker = paced(TelegramRates(global_per_second=30, group_per_minute=2, chat_per_second=1))

    # Part 1 went; part 2 must wait for the group budget: held back, which is no attempt.
    assert await worker.run_once() == 0
    long = await load(sessionmaker, long_id)
    assert long.status == MessageStatus.QUEUED
    assert long.attempts == []  # being paced is not an attempt
    assert long.attempt_count == 0
    assert (await load(sessionmaker, after_id)).next_attempt_at == long.next_attempt_at

    await drain(worker, sessionmaker, clock, fake_clock)

    calls = await sends(control)
    assert [c.status for c in calls] == [200] * 4
    assert most_in_window([c.time for c in calls], 60.0) <= 2
    texts = await texts_in(control, personal.chat_id)
    assert [t[:6] for t in texts] == ["(1/3) ", "(2/3) ", "(3/3) ", "after "]
    long = await load(sessionmaker, long_id)
    assert [a.outcome for a in long.attempts] == [AttemptOutcome.DELIVERED]
    assert long.attempts[0].external_id is not None
    assert len(long.attempts[0].external_id.split(",")) == 3


async def test_a_send_woken_late_takes_a_new_slot(clock: UTCClock) -> None:
    rates = TelegramRates(global_per_second=10, group_per_minute=0, chat_per_second=0)
    pacer = Pacer(rates, clock().timestamp())
    slept: list[float] = []

    async def stalling_sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds + (0.2 if len(slept) == 1 else 0))  # the loop stalls once

    pacing = PacedSends(pacer, clock, stalling_sleep, patience=0.5)
    assert await pacing.before_send(-1) is None  # at once
    slot = (1 + SHORT_MARGIN) / 10
    assert await pacing.before_send(-2) is None  # its slot came in 0.103 s, but it woke 0.2 s late
    assert slept == pytest.approx([slot])
    # The late send spent a fresh token: the next one waits a full slot, no burst of two.
    assert pacer.reserve(-3, True, clock().timestamp()) == pytest.approx(slot)


def test_the_rate_settings_reach_the_worker(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env of the developer's
    monkeypatch.setenv("LIBRAL_CONTENT_KEY", new_key_text())
    monkeypatch.setenv("LIBRAL_TELEGRAM_GLOBAL_RATE", "0")
    monkeypatch.setenv("LIBRAL_TELEGRAM_GROUP_RATE", "120")
    monkeypatch.setenv("LIBRAL_TELEGRAM_CHAT_RATE", "2.5")
    config = _gateway_config(load_settings(), DEFAULT_BOT_TOKEN)
    assert config.telegram_rates == TelegramRates(0, 120, 2.5)
    assert GatewayConfig(**{**config.__dict__, "telegram_rates": TelegramRates()}).telegram_rates
    monkeypatch.delenv("LIBRAL_TELEGRAM_GROUP_RATE")
    monkeypatch.setenv("LIBRAL_TELEGRAM_CHAT_RATE", "-1")
    with pytest.raises(SettingsError, match=r"^LIBRAL_TELEGRAM_CHAT_RATE: "):
        load_settings()
    monkeypatch.delenv("LIBRAL_TELEGRAM_CHAT_RATE")
    monkeypatch.delenv("LIBRAL_TELEGRAM_GLOBAL_RATE")
    assert _gateway_config(load_settings(), DEFAULT_BOT_TOKEN).telegram_rates == TelegramRates()


async def test_the_gateway_builds_its_worker_with_the_configured_rates(tmp_path: Path) -> None:
    rates = TelegramRates(global_per_second=25, group_per_minute=10, chat_per_second=1)
    config = GatewayConfig(
        DEFAULT_BOT_TOKEN,
        "http://127.0.0.1:9",
        f"sqlite+aiosqlite:///{tmp_path / 'gw.sqlite3'}",
        "127.0.0.1",
        8080,
        b"k" * 32,
        telegram_rates=rates,
    )
    gateway = build_gateway(config)
    try:
        assert gateway.worker.pacing is not None
        assert gateway.worker.pacing.pacer.rates == rates
    finally:
        await gateway.bot.session.close()
        await gateway.engine.dispose()
    assert GatewayConfig(*astuple(config)[:6]).telegram_rates == TelegramRates()  # default


# --- no head-of-line blocking -----------------------------------------------------------------


async def test_a_chat_told_to_wait_30_s_does_not_hold_up_another_chat(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    cipher: ContentCipher,
    clock: UTCClock,
    fake_clock: FakeClock,
    paced: Callable[..., DeliveryWorker],
) -> None:
    other = await add_person(control, sessionmaker, "Bo")
    await control.add_fault(
        "sendMessage", error_code=429, description="Too Many Requests: retry after 30",
        times=1, retry_after=30,
    )  # fmt: skip
    first = await put(sessionmaker, cipher, clock, personal.user_id, ["a1", "a2", "a3"])
    await put(sessionmaker, cipher, clock, other.user_id, ["b1"])
    start = clock()
    worker = paced(TelegramRates())  # Telegram's own limits

    await worker.run_once()  # one slot: the first chat is served first and gets the 429

    assert await texts_in(control, personal.chat_id) == []
    assert await texts_in(control, other.chat_id) == ["b1"]  # in the same run
    for message_id in first:
        message = await load(sessionmaker, message_id)
        assert message.next_attempt_at == start + timedelta(seconds=30)

    await drain(worker, sessionmaker, clock, fake_clock)
    assert await texts_in(control, personal.chat_id) == ["a1", "a2", "a3"]
    first_send = next(c for c in await sends(control, personal.chat_id) if c.status == 200)
    later = [c for c in await sends(control) if c.status == 200 and c.time < first_send.time]
    assert len(later) == 1  # only b1 went before the chat's block ended
    assert (clock() - start).total_seconds() >= 30


async def test_a_chat_whose_bucket_is_empty_does_not_hold_up_another_chat(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    cipher: ContentCipher,
    clock: UTCClock,
    fake_clock: FakeClock,
    paced: Callable[..., DeliveryWorker],
) -> None:
    others = [await add_person(control, sessionmaker, f"P{i}") for i in range(3)]
    await control.set_flood(enabled=True)  # Telegram's limits, in the sandbox
    busy = await put(sessionmaker, cipher, clock, personal.user_id, [f"a{i}" for i in range(10)])
    for person in others:
        await put(sessionmaker, cipher, clock, person.user_id, ["hello"])
    worker = paced(TelegramRates())

    assert await worker.run_once() == 4  # a0 and each other chat's message, in one run

    assert await texts_in(control, personal.chat_id) == ["a0"]
    for person in others:
        assert await texts_in(control, person.chat_id) == ["hello"]
    held = await load(sessionmaker, busy[1])
    assert held.next_attempt_at > clock()  # held back until the chat's bucket allows
    assert held.attempts == []

    await drain(worker, sessionmaker, clock, fake_clock)
    assert await texts_in(control, personal.chat_id) == [f"a{i}" for i in range(10)]
    assert {c.status for c in await sends(control)} == {200}


async def test_messages_for_a_held_chat_are_postponed_without_being_claimed(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    cipher: ContentCipher,
    clock: UTCClock,
    paced: Callable[..., DeliveryWorker],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await control.set_flood(enabled=True)
    worker = paced(TelegramRates())
    first = await put(sessionmaker, cipher, clock, personal.user_id, ["a0", "a1"])
    await worker.run_once()  # a0 goes, a1 is claimed and handed back: the chat waits
    claims: list[str] = []
    real_claim = outbox.claim_many

    async def counting_claim(
        session: AsyncSession, message_ids: Sequence[str], *args: Any
    ) -> dict[str, Message]:
        claims.extend(message_ids)
        return await real_claim(session, message_ids, *args)

    monkeypatch.setattr(outbox, "claim_many", counting_claim)
    later = await put(sessionmaker, cipher, clock, personal.user_id, [f"b{i}" for i in range(5)])

    await worker.run_once()

    assert claims == []  # the worker knew the chat was held: one UPDATE, no claims
    a1 = await load(sessionmaker, first[1])
    assert a1.status is MessageStatus.QUEUED
    assert a1.next_attempt_at > clock()
    for message_id in later:
        message = await load(sessionmaker, message_id)
        assert message.status is MessageStatus.QUEUED
        assert message.next_attempt_at == a1.next_attempt_at  # until the chat may send again
    assert await texts_in(control, personal.chat_id) == ["a0"]


async def test_a_held_chat_s_backlog_larger_than_a_pass_does_not_hold_up_another_chat(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    cipher: ContentCipher,
    clock: UTCClock,
    paced: Callable[..., DeliveryWorker],
) -> None:
    """A flood into one group arrives faster than a pass of the worker takes (100 messages):
    each pass found only the held chat's newest messages (older than the other chat's), put
    them back and stopped, so another person's message waited for the flood to end (17 s at
    7,000 a second, measured). A run goes on while a whole pass was the held chat's."""
    other = await add_person(control, sessionmaker, "Bo")
    await control.set_flood(enabled=True)
    worker = paced(TelegramRates(), batch_size=5)
    await put(sessionmaker, cipher, clock, personal.user_id, ["a0", "a1"])
    await worker.run_once()  # a0 goes; the chat waits for its bucket now
    # One of the chat's messages with a lease run out (a crashed worker's): due, and not moved
    # by putting the chat's messages back, so every pass finds it again.
    stuck = await put(sessionmaker, cipher, clock, personal.user_id, ["stuck"])
    await lease_run_out(sessionmaker, clock, stuck)
    flood = await put(sessionmaker, cipher, clock, personal.user_id, [f"f{i}" for i in range(23)])
    await put(sessionmaker, cipher, clock, other.user_id, ["b0"])

    assert await worker.run_once() == 1

    assert await texts_in(control, other.chat_id) == ["b0"]
    assert await texts_in(control, personal.chat_id) == ["a0"]
    for message_id in flood:
        message = await load(sessionmaker, message_id)
        assert (message.status, message.attempts) == (MessageStatus.QUEUED, [])
        assert message.next_attempt_at > clock()  # put back until the chat may send again


async def test_a_run_stops_looking_when_a_pass_finds_what_it_could_not_put_back(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    cipher: ContentCipher,
    clock: UTCClock,
    paced: Callable[..., DeliveryWorker],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Messages of a held chat whose lease ran out are due, and putting them back does not
    move them (they are not queued): the second pass finds the same ones and the run ends."""
    await control.set_flood(enabled=True)
    worker = paced(TelegramRates(), batch_size=5)
    await put(sessionmaker, cipher, clock, personal.user_id, ["a0", "a1"])
    await worker.run_once()  # a0 goes; the chat waits for its bucket now
    stuck = await put(sessionmaker, cipher, clock, personal.user_id, [f"s{i}" for i in range(6)])
    await lease_run_out(sessionmaker, clock, stuck)
    looks = 0
    real_due = outbox.due

    async def counting_due(session: AsyncSession, *args: Any) -> list[outbox.Candidate]:
        nonlocal looks
        looks += 1
        return await real_due(session, *args)

    monkeypatch.setattr(outbox, "due", counting_due)

    assert await worker.run_once() == 0

    assert looks == 2


async def test_other_channels_are_not_paced_by_telegrams_buckets(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    cipher: ContentCipher,
    clock: UTCClock,
    paced: Callable[..., DeliveryWorker],
) -> None:
    [telegram_id] = await put(sessionmaker, cipher, clock, personal.user_id, ["by telegram"])
    [webhook_id] = await put(
        sessionmaker, cipher, clock, personal.user_id, ["by webhook"], channels=[Channel.WEBHOOK]
    )
    worker = paced(TelegramRates())
    assert worker.pacing is not None
    worker.pacing.pacer.penalise(personal.chat_id, clock().timestamp(), 600)

    await worker.run_once()

    held = await load(sessionmaker, telegram_id)
    assert held.status == MessageStatus.QUEUED
    assert held.next_attempt_at == clock() + timedelta(seconds=600)
    # The webhook message was tried in the same run (this gateway has no webhook set up).
    tried = await load(sessionmaker, webhook_id)
    assert [(a.channel, a.outcome) for a in tried.attempts] == [
        (Channel.WEBHOOK, AttemptOutcome.FAILED)
    ]
    assert await sends(control) == []


async def test_a_telegram_retry_holds_back_the_chats_telegram_messages_only(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    cipher: ContentCipher,
    clock: UTCClock,
    paced: Callable[..., DeliveryWorker],
) -> None:
    first, second = await put(sessionmaker, cipher, clock, personal.user_id, ["a", "b"])
    [webhook_id] = await put(
        sessionmaker, cipher, clock, personal.user_id, ["by webhook"], channels=[Channel.WEBHOOK]
    )
    await control.add_fault(
        "sendMessage", error_code=429, description="Too Many Requests", retry_after=600, times=1
    )
    worker = paced(TelegramRates())

    await worker.run_once()

    retried = await load(sessionmaker, first)
    assert [a.outcome for a in retried.attempts] == [AttemptOutcome.RETRY]
    assert retried.next_attempt_at == clock() + timedelta(seconds=600)
    behind = await load(sessionmaker, second)
    assert behind.status == MessageStatus.QUEUED
    assert behind.attempts == []
    assert behind.next_attempt_at == retried.next_attempt_at  # keeps its place behind it
    # The webhook message was tried in the same run, not held for ten minutes.
    tried = await load(sessionmaker, webhook_id)
    assert [(a.channel, a.outcome) for a in tried.attempts] == [
        (Channel.WEBHOOK, AttemptOutcome.FAILED)
    ]


async def test_a_retrys_hold_on_the_chat_outlives_the_worker(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    cipher: ContentCipher,
    clock: UTCClock,
    fake_clock: FakeClock,
    paced: Callable[..., DeliveryWorker],
) -> None:
    # The first message is told to wait ten minutes; the worker that knew it holds the chat is
    # gone (a restart). A message committed after it must still wait behind it, and a webhook
    # message of the same person must not.
    [first] = await put(sessionmaker, cipher, clock, personal.user_id, ["a"])
    await control.add_fault(
        "sendMessage", error_code=429, description="Too Many Requests", retry_after=600, times=1
    )
    await paced(TelegramRates()).run_once()
    retried = await load(sessionmaker, first)
    assert retried.next_attempt_at == clock() + timedelta(seconds=600)

    clock.advance(1)
    fake_clock.advance(1)
    [later] = await put(sessionmaker, cipher, clock, personal.user_id, ["b"])
    [hook] = await put(
        sessionmaker, cipher, clock, personal.user_id, ["by webhook"], channels=[Channel.WEBHOOK]
    )
    restarted = paced(TelegramRates())
    await restarted.run_once()

    behind = await load(sessionmaker, later)
    assert (behind.status, behind.attempts) == (MessageStatus.QUEUED, [])
    assert behind.next_attempt_at == retried.next_attempt_at  # behind it, not before
    assert [a.channel for a in (await load(sessionmaker, hook)).attempts] == [Channel.WEBHOOK]
    await drain(restarted, sessionmaker, clock, fake_clock)
    assert await texts_in(control, personal.chat_id) == ["a", "b"]


async def test_a_chat_paced_mid_run_holds_back_its_messages_past_its_share_too(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    cipher: ContentCipher,
    clock: UTCClock,
    fake_clock: FakeClock,
    paced: Callable[..., DeliveryWorker],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The chat's one a second lets "a" go and holds "b" back; "c" and "d", past the chat's
    # share of the pass (never claimed), must be held back behind it too, not left due.
    monkeypatch.setattr(worker_module, "CHAT_SHARE", 2)
    ids = await put(sessionmaker, cipher, clock, personal.user_id, ["a", "b", "c", "d"])
    worker = paced(TelegramRates())

    await worker.run_once()

    assert await texts_in(control, personal.chat_id) == ["a"]
    rest = [await load(sessionmaker, m) for m in ids[1:]]
    assert {(m.status, m.next_attempt_at) for m in rest} == {
        (MessageStatus.QUEUED, rest[0].next_attempt_at)
    }
    assert rest[0].next_attempt_at > clock()
    await drain(worker, sessionmaker, clock, fake_clock)
    assert await texts_in(control, personal.chat_id) == ["a", "b", "c", "d"]


# --- priorities -----------------------------------------------------------------------------


async def test_an_urgent_message_overtakes_normal_ones_of_the_same_chat(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    cipher: ContentCipher,
    clock: UTCClock,
    make_worker: WorkerFactory,
) -> None:
    normal = [f"normal {i}" for i in range(10)]
    await put(sessionmaker, cipher, clock, personal.user_id, normal)
    clock.advance(1)
    await put(sessionmaker, cipher, clock, personal.user_id, ["URGENT"], priority=Priority.URGENT)

    assert await make_worker().run_once() == 11

    assert await texts_in(control, personal.chat_id) == ["URGENT", *normal]


async def test_an_urgent_message_overtakes_normal_ones_of_other_chats(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    cipher: ContentCipher,
    clock: UTCClock,
    make_worker: WorkerFactory,
) -> None:
    other = await add_person(control, sessionmaker, "Bo")
    await put(sessionmaker, cipher, clock, personal.user_id, [f"normal {i}" for i in range(10)])
    clock.advance(1)
    await put(sessionmaker, cipher, clock, other.user_id, ["URGENT"], priority=Priority.URGENT)

    # One slot: chats are served one after another, the one with urgent mail first.
    await make_worker(concurrency=1).run_once()

    [first, *_] = await sends(control)
    assert str(first.params["text"]).startswith("URGENT")


async def test_a_paced_chat_sends_its_urgent_message_at_its_next_slot(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    cipher: ContentCipher,
    clock: UTCClock,
    fake_clock: FakeClock,
    paced: Callable[..., DeliveryWorker],
) -> None:
    normal = [f"normal {i}" for i in range(5)]
    await put(sessionmaker, cipher, clock, personal.user_id, normal)
    worker = paced(TelegramRates())
    await worker.run_once()  # normal 0 goes; the others wait for the chat's bucket
    clock.advance(0.2)
    fake_clock.advance(0.2)
    await put(sessionmaker, cipher, clock, personal.user_id, ["URGENT"], priority=Priority.URGENT)

    await drain(worker, sessionmaker, clock, fake_clock)

    assert await texts_in(control, personal.chat_id) == ["normal 0", "URGENT", *normal[1:]]


@pytest.mark.parametrize(
    ("queued_in_order", "expected"),
    [
        # (priority, label) in the order queued -> the order the due query gives.
        (
            [("normal", "n1"), ("low", "l1"), ("urgent", "u1"), ("high", "h1"), ("normal", "n2")],
            ["u1", "h1", "n1", "l1", "n2"],
        ),
        # Urgent and high are one class: a person's messages within a class keep their order.
        ([("high", "h1"), ("urgent", "u1"), ("high", "h2")], ["h1", "u1", "h2"]),
        ([("low", "l1"), ("normal", "n1")], ["l1", "n1"]),
    ],
)
async def test_the_due_query_orders_by_priority_class_then_time(
    sessionmaker: async_sessionmaker[AsyncSession],
    personal: Personal,
    cipher: ContentCipher,
    clock: UTCClock,
    queued_in_order: list[tuple[str, str]],
    expected: list[str],
) -> None:
    labels = await put_labelled(sessionmaker, cipher, clock, personal.user_id, queued_in_order)
    async with sessionmaker() as session:
        due = await outbox.due(session, clock(), 100)
    assert [labels[c.message_id] for c in due] == expected


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        (1, ["u1"]),
        (2, ["u1", "lease"]),
        (3, ["u1", "lease", "h1"]),
        (4, ["u1", "lease", "h1", "n1"]),
        (6, ["u1", "lease", "h1", "n1", "n2", "n3"]),
        (50, ["u1", "lease", "h1", "n1", "n2", "n3", "l1"]),
    ],
)
async def test_a_limited_due_query_takes_the_first_by_class_then_time(
    sessionmaker: async_sessionmaker[AsyncSession],
    personal: Personal,
    cipher: ContentCipher,
    clock: UTCClock,
    limit: int,
    expected: list[str],
) -> None:
    """The first `limit` of everything due, however the branches of the query found them:
    normal ones queued before the urgent, a run-out lease (a high message a worker crashed on)
    among them, and rows not yet due or carried left out."""
    labels = await put_labelled(
        sessionmaker,
        cipher,
        clock,
        personal.user_id,
        [
            ("normal", "n1"),
            ("high", "lease"),
            ("normal", "n2"),
            ("urgent", "u1"),
            ("normal", "n3"),
            ("high", "h1"),
            ("low", "l1"),
            ("urgent", "later"),
            ("normal", "carried"),
        ],
    )
    ids = {label: message_id for message_id, label in labels.items()}
    async with sessionmaker() as session, session.begin():
        # The urgent "u1" was due before "h1"; "lease" was claimed and its worker vanished.
        await session.execute(
            update(Message)
            .where(Message.id == ids["u1"])
            .values(next_attempt_at=clock() - timedelta(seconds=30))
        )
        await session.execute(
            update(Message)
            .where(Message.id == ids["lease"])
            .values(status=MessageStatus.SENDING, claimed_until=clock() - timedelta(seconds=1))
        )
        await session.execute(
            update(Message)
            .where(Message.id == ids["later"])
            .values(next_attempt_at=clock() + timedelta(hours=1))
        )
        await session.execute(
            update(Message).where(Message.id == ids["carried"]).values(carried_by=ids["n1"])
        )
    async with sessionmaker() as session:
        due = await outbox.due(session, clock(), limit)
    assert [labels[c.message_id] for c in due] == expected


@pytest.mark.parametrize(
    ("limit", "expected"), [(1, ["u"]), (2, ["u", "n1"]), (3, ["u", "n1", "n2"])]
)
async def test_run_out_leases_beyond_the_limit_are_taken_urgent_first(
    sessionmaker: async_sessionmaker[AsyncSession],
    personal: Personal,
    cipher: ContentCipher,
    clock: UTCClock,
    limit: int,
    expected: list[str],
) -> None:
    """More messages whose worker vanished than one pass takes (workers crashed in a burst):
    the urgent one among them still goes first."""
    queued = [("normal", "n1"), ("normal", "n2"), ("urgent", "u")]
    labels = await put_labelled(sessionmaker, cipher, clock, personal.user_id, queued)
    await lease_run_out(sessionmaker, clock, list(labels))
    async with sessionmaker() as session:
        due = await outbox.due(session, clock(), limit)
    assert [labels[c.message_id] for c in due] == expected


# --- as deployed: parallel chats, real time ---------------------------------------------------


class RealClock:
    """The sandbox measuring real monotonic time (it has to move on its own here)."""

    def __call__(self) -> float:
        return time.monotonic()

    def advance(self, seconds: float) -> None:  # pragma: no cover - never called here
        raise AssertionError("real time cannot be moved")


class WallClock:
    def __call__(self) -> datetime:
        return datetime.now(UTC)


class TestRealTime:
    @pytest.fixture
    def fake_clock(self) -> RealClock:  # the sandbox's clock, for the `server` fixture
        return RealClock()

    @pytest.fixture
    def clock(self) -> WallClock:  # the worker's clock
        return WallClock()

    @pytest.fixture
    async def people(
        self,
        control: SandboxClient,
        sessionmaker: async_sessionmaker[AsyncSession],
        personal: Personal,
    ) -> list[Person]:
        extra = [await add_person(control, sessionmaker, f"P{i}") for i in range(7)]
        return [Person(personal.user_id, personal.chat_id), *extra]

    async def test_parallel_chats_hold_the_global_rate_without_a_429(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        control: SandboxClient,
        people: list[Person],
        cipher: ContentCipher,
        clock: WallClock,
        make_worker: WorkerFactory,
    ) -> None:
        # The worker paces to 20 a second; the sandbox allows 30 (real time has jitter: the
        # exact limit is checked on fake time above) and each group 20 a second.
        await control.set_flood(enabled=True, global_per_second=30, group_per_minute=1200)
        for person in people:
            await put(sessionmaker, cipher, clock, person.user_id, [f"m{i}" for i in range(12)])
        worker = make_worker(
            clock=clock,
            rates=TelegramRates(global_per_second=20, group_per_minute=1200, chat_per_second=0),
            concurrency=8,
            poll_interval=0.05,
        )
        stop = asyncio.Event()
        started = time.monotonic()
        task = asyncio.create_task(worker.run(stop))
        try:
            async with asyncio.timeout(15):
                version = 0
                while await queued(sessionmaker):
                    version = await control.wait_for_change(version, wait=0.2)
        finally:
            stop.set()
            await task
        elapsed = time.monotonic() - started

        calls = await sends(control)
        assert len(calls) == 96
        assert {c.status for c in calls} == {200}
        for person in people:
            assert await texts_in(control, person.chat_id) == [f"m{i}" for i in range(12)]
        # 96 sends at 20 a second (19 after the margin) take about five seconds.
        # (Exactly 20 when measured; a little slack for a loaded machine's timing.)
        assert most_in_window([c.time for c in calls], 1.0) <= 24
        assert 4.0 < elapsed < 8.0


@dataclass
class WebhookClaim:
    worker: DeliveryWorker
    claimed: Claimed


@pytest.fixture
async def webhook_claim(
    sessionmaker: async_sessionmaker[AsyncSession],
    cipher: ContentCipher,
    clock: UTCClock,
    personal: Personal,
    make_worker: WorkerFactory,
) -> WebhookClaim:
    """A webhook message, claimed by a worker as part of its chat's queue is (not tried yet)."""
    worker = make_worker()
    [webhook_id] = await put(
        sessionmaker, cipher, clock, personal.user_id, ["by webhook"], channels=[Channel.WEBHOOK]
    )
    return WebhookClaim(worker, (await worker._deliverer.claim([webhook_id]))[webhook_id])


def _watch_elsewhere(
    monkeypatch: pytest.MonkeyPatch, sessionmaker: async_sessionmaker[AsyncSession]
) -> list[datetime | None]:
    """The stored lease of each message as it is tried on a channel other than Telegram."""
    leases: list[datetime | None] = []
    real_attempt = Elsewhere.attempt

    async def recording_attempt(self: Elsewhere, owner: Any, claim: Claim, payload: Any) -> Any:
        leases.append((await load(sessionmaker, claim.message.id)).claimed_until)
        return await real_attempt(self, owner, claim, payload)

    monkeypatch.setattr(Elsewhere, "attempt", recording_attempt)
    return leases


async def test_a_message_claimed_with_its_queue_is_not_tried_once_its_lease_is_lost(
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: UTCClock,
    webhook_claim: WebhookClaim,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    worker, claimed = webhook_claim.worker, webhook_claim.claimed
    message_id = claimed.message.id
    # The messages before it in its chat's queue took longer than the lease, and another
    # worker took it over meanwhile.
    clock.advance(61)
    other_lease = clock() + timedelta(seconds=60)
    async with sessionmaker() as session, session.begin():
        assert await outbox.claim(session, message_id, clock(), other_lease)
    tried = _watch_elsewhere(monkeypatch, sessionmaker)

    assert await worker._deliverer.deliver_claimed(claimed) is None
    assert tried == []  # nothing sent on a claim that is not ours any more
    message = await load(sessionmaker, message_id)
    assert message.status is MessageStatus.SENDING
    assert message.claimed_until == other_lease


async def test_a_message_claimed_a_while_ago_gets_a_new_lease_before_it_is_tried(
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: UTCClock,
    webhook_claim: WebhookClaim,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    worker, claimed = webhook_claim.worker, webhook_claim.claimed
    clock.advance(45)  # three quarters of the 60 s lease gone
    leases = _watch_elsewhere(monkeypatch, sessionmaker)

    await worker._deliverer.deliver_claimed(claimed)
    assert leases == [clock() + timedelta(seconds=60)]  # a whole lease from now, when tried


@pytest.mark.parametrize(
    ("concurrency", "per_second", "patience"),
    [
        (1, 30.0, 0.5),  # one chat's send never waits long for the global bucket: the floor
        (8, 30.0, 0.5),  # 8 sends queue within 0.29 s: the floor still
        (32, 30.0, 0.5),  # not sized by all 32 chats (1.17 s): a pass waits for its slowest
        (8, 5.0, 1.76),  # a low global rate: 8 sends queue for 1.6 s (and a tenth to spare)
        (32, 5.0, 1.76),  # the same: only PATIENT_CHATS chats count
        (8, 1.0, 5.0),  # capped: short next to the lease
        (8, 0.0, 0.5),  # no global limit
    ],
)
def test_patience_lets_a_few_chats_queue_for_the_global_bucket(
    concurrency: int, per_second: float, patience: float
) -> None:
    assert patience_for(concurrency, per_second) == pytest.approx(patience)


@pytest.mark.parametrize(
    ("rates", "chats"),
    [
        (TelegramRates(), 8),  # Telegram's limits: the pacer sets the pace
        (TelegramRates(30, 0, 0), 8),  # any limit at all paces
        (TelegramRates(0, 20, 0), 8),
        (TelegramRates.unlimited(), 32),  # as fast as it can (a benchmark, a local server)
    ],
)
def test_fewer_chats_are_served_at_once_while_pacing(rates: TelegramRates, chats: int) -> None:
    assert chats_at_once(rates) == chats
