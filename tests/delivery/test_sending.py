"""Delivery to the right place, rendered right, and the record left behind."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.channels.telegram import TelegramChannel
from gateway.delivery.attempt import Deliverer
from gateway.delivery.claim import Claimed
from gateway.delivery.worker import ERASED_RENDERS_EVERY
from gateway.outbox_payload import OutboxPayload
from sandbox.client import SandboxClient
from storage.enums import AttemptOutcome, Category, Channel, MessageStatus
from storage.models import Message
from storage.repositories import outbox
from tests.delivery.conftest import Enqueue, Personal, UTCClock, WorkerFactory, load


async def test_delivers_to_the_category_topic_and_wipes_the_content(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    enqueue: Enqueue,
    make_worker: WorkerFactory,
    clock: UTCClock,
) -> None:
    message_id = await enqueue("New sign-in from Berlin", category=Category.AUTH)

    assert await make_worker().run_once() == 1

    [sent] = (await control.get_chat(personal.chat_id)).bot_messages()[-1:]
    assert sent.text == "New sign-in from Berlin\n\n#auth #security"
    assert sent.message_thread_id == personal.threads[Category.AUTH]
    assert sent.is_topic_message
    assert sent.parse_mode == "HTML"
    assert not sent.disable_notification
    message = await load(sessionmaker, message_id)
    assert message.status == MessageStatus.DELIVERED
    assert message.encrypted_content is None
    assert message.delivered_at == clock()
    assert message.claimed_until is None
    assert message.attempt_count == 1
    [attempt] = message.attempts
    assert (attempt.channel, attempt.attempt, attempt.outcome) == (
        Channel.TELEGRAM,
        1,
        AttemptOutcome.DELIVERED,
    )
    assert attempt.external_id == str(sent.message_id)
    assert attempt.error is None


async def test_general_goes_to_the_general_topic(
    control: SandboxClient, personal: Personal, enqueue: Enqueue, make_worker: WorkerFactory
) -> None:
    await enqueue("backup finished", category=Category.GENERAL)

    await make_worker().run_once()

    sent = (await control.get_chat(personal.chat_id)).bot_messages()[-1]
    assert sent.text == "backup finished\n\n#general"
    assert sent.message_thread_id is None


async def test_a_named_thread_wins_over_the_category(
    control: SandboxClient, personal: Personal, enqueue: Enqueue, make_worker: WorkerFactory
) -> None:
    payments = personal.threads[Category.PAYMENT]
    await enqueue("invoice paid", category=Category.SYSTEM, thread_id=payments)

    await make_worker().run_once()

    sent = (await control.get_chat(personal.chat_id)).bot_messages()[-1]
    assert sent.message_thread_id == payments
    assert sent.text == "invoice paid\n\n#system"


async def test_text_is_escaped_hashtags_last_and_previews_disabled(
    control: SandboxClient, personal: Personal, enqueue: Enqueue, make_worker: WorkerFactory
) -> None:
    await enqueue(
        "Login from <Firefox> & friends: https://example.com",
        category=Category.AUTH,
        hashtags=("login", "#Berlin"),
        disable_preview=True,
    )

    await make_worker().run_once()

    sent = (await control.get_chat(personal.chat_id)).bot_messages()[-1]
    assert sent.text is not None
    assert sent.text.startswith("Login from <Firefox> & friends: https://example.com")
    assert sent.text.splitlines()[-1] == "#auth #security #login #Berlin"
    assert sent.link_preview_options == {"is_disabled": True}


async def test_previews_stay_on_unless_disabled(
    control: SandboxClient, personal: Personal, enqueue: Enqueue, make_worker: WorkerFactory
) -> None:
    await enqueue("see https://example.com", category=Category.AUTH)

    await make_worker().run_once()

    sent = (await control.get_chat(personal.chat_id)).bot_messages()[-1]
    assert not (sent.link_preview_options or {}).get("is_disabled")


async def test_a_long_text_goes_out_as_numbered_parts_in_order(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    enqueue: Enqueue,
    make_worker: WorkerFactory,
) -> None:
    lines = [f"line {i:05d} of the build log" for i in range(400)]  # ~11 600 characters
    message_id = await enqueue("\n".join(lines), category=Category.SYSTEM)

    await make_worker().run_once()

    parts = [
        m
        for m in (await control.get_chat(personal.chat_id)).bot_messages()
        if m.message_thread_id == personal.threads[Category.SYSTEM]
    ]
    assert len(parts) == 3
    texts = [p.text or "" for p in parts]
    assert [t[:6] for t in texts] == ["(1/3) ", "(2/3) ", "(3/3) "]
    assert texts[-1].endswith("\n\n#system")
    assert not any("#system" in t for t in texts[:-1])
    received = [ln for t in texts for ln in t[6:].splitlines() if ln.startswith("line ")]
    assert received == lines
    [attempt] = (await load(sessionmaker, message_id)).attempts
    assert attempt.external_id == ",".join(str(p.message_id) for p in parts)


async def test_a_long_text_is_rendered_off_the_event_loop_and_a_short_one_on_it(
    control: SandboxClient,
    personal: Personal,
    enqueue: Enqueue,
    make_worker: WorkerFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rendering and splitting a digest takes tens of milliseconds, which every request would
    wait out on the event loop; a short text is not worth a thread."""
    rendered_on: dict[int, int] = {}
    render = TelegramChannel.render

    def recording(
        self: TelegramChannel, payload: OutboxPayload, category: Category, owner: str = ""
    ) -> list[str]:
        rendered_on[payload.size()] = threading.get_ident()
        return render(self, payload, category, owner)

    monkeypatch.setattr(TelegramChannel, "render", recording)
    long_text = "\n".join(f"line {i:05d} of the build log" for i in range(400))
    await enqueue(long_text, category=Category.SYSTEM)
    await enqueue("short", category=Category.SYSTEM)

    await make_worker().run_once()

    loop_thread = threading.get_ident()
    assert rendered_on[len("short")] == loop_thread
    assert rendered_on[len(long_text)] != loop_thread
    texts = [m.text or "" for m in (await control.get_chat(personal.chat_id)).bot_messages()]
    assert sum(t.startswith(("(1/3) ", "(2/3) ", "(3/3) ")) for t in texts) == 3


@pytest.mark.parametrize(
    ("error_code", "description", "forgotten"),
    [
        (400, "Bad Request: message is too long", True),  # failed for good
        (500, "Internal Server Error", False),  # tried again later, from the memo
    ],
)
async def test_a_long_text_is_forgotten_once_it_is_settled_and_kept_for_a_retry(
    control: SandboxClient,
    enqueue: Enqueue,
    make_worker: WorkerFactory,
    monkeypatch: pytest.MonkeyPatch,
    error_code: int,
    description: str,
    forgotten: bool,
) -> None:
    forgets: list[int] = []
    forget = TelegramChannel.forget_rendered

    def recording(self: TelegramChannel, payload: OutboxPayload, category: Category) -> None:
        forgets.append(payload.size())
        forget(self, payload, category)

    monkeypatch.setattr(TelegramChannel, "forget_rendered", recording)
    long_text = "\n".join(f"line {i:05d} of the build log" for i in range(400))
    await enqueue(long_text, category=Category.SYSTEM)
    await control.add_fault("sendMessage", error_code=error_code, description=description, times=1)

    await make_worker().run_once()

    assert forgets == ([len(long_text)] if forgotten else [])


async def test_a_run_forgets_what_it_rendered_for_a_message_erased_by_another_process(
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: UTCClock,
    control: SandboxClient,
    enqueue: Enqueue,
    make_worker: WorkerFactory,
) -> None:
    """An erasure in a `serve --role api` process cannot call this process's worker: the
    worker finds it in the database after its next run."""
    long_text = "\n".join(f"line {i:05d} of the build log" for i in range(400))
    message_id = await enqueue(long_text, category=Category.SYSTEM)
    await control.add_fault("sendMessage", error_code=500, description="Internal Server Error")
    worker = make_worker()
    await worker.run_once()  # failed, for a retry: its parts are kept meanwhile
    telegram = worker._telegram
    assert telegram.rendered_for() == {message_id}
    await worker.run_once()  # nothing due yet: only the look at what is kept
    assert telegram.rendered_for() == {message_id}  # still there: kept

    async with sessionmaker() as session, session.begin():
        await session.execute(delete(Message).where(Message.id == message_id))  # as DELETE does
    await worker.run_once()
    assert telegram.rendered_for() == {message_id}  # looked less than a second ago
    clock.advance(ERASED_RENDERS_EVERY)
    await worker.run_once()

    assert telegram.rendered_for() == set()


async def test_json_data_is_shown_as_a_code_block(
    control: SandboxClient, personal: Personal, enqueue: Enqueue, make_worker: WorkerFactory
) -> None:
    await enqueue({"cpu": 93, "host": "db-1"}, kind="json_data", category=Category.SYSTEM)

    await make_worker().run_once()

    sent = (await control.get_chat(personal.chat_id)).bot_messages()[-1]
    assert sent.text is not None
    assert '"host": "db-1"' in sent.text
    assert any(e["type"] == "pre" for e in sent.entities)


async def test_nothing_due_means_nothing_sent(
    control: SandboxClient, personal: Personal, make_worker: WorkerFactory
) -> None:
    before = len(await control.get_calls())

    assert await make_worker().run_once() == 0

    assert len(await control.get_calls()) == before


async def test_quiet_hours_send_without_sound(
    control: SandboxClient,
    personal: Personal,
    enqueue: Enqueue,
    make_worker: WorkerFactory,
) -> None:
    await enqueue("night owl", silent=True)
    await enqueue("day bird")
    await make_worker().run_once()
    sent = {
        m.text.split("\n")[0]: m
        for m in (await control.get_chat(personal.chat_id)).bot_messages()
        if m.text
    }
    assert sent["night owl"].disable_notification is True
    assert sent["day bird"].disable_notification is False


async def test_a_chats_queue_is_claimed_in_one_statement_and_sent_in_order(
    sessionmaker: async_sessionmaker[AsyncSession],
    control: SandboxClient,
    personal: Personal,
    enqueue: Enqueue,
    make_worker: WorkerFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids = [await enqueue(f"line {n}", category=Category.SYSTEM, created_offset=n) for n in range(5)]
    claims: list[list[str]] = []
    real_claim = outbox.claim_many

    async def recording_claim(
        session: AsyncSession, message_ids: Sequence[str], *args: Any
    ) -> dict[str, Message]:
        claims.append(list(message_ids))
        return await real_claim(session, message_ids, *args)

    monkeypatch.setattr(outbox, "claim_many", recording_claim)

    assert await make_worker().run_once() == 5

    assert claims == [ids]
    texts = [m.text for m in (await control.get_chat(personal.chat_id)).bot_messages()]
    assert texts[-5:] == [f"line {n}\n\n#system" for n in range(5)]
    for n, message_id in enumerate(ids):
        message = await load(sessionmaker, message_id)
        assert message.status == MessageStatus.DELIVERED
        assert [a.attempt for a in message.attempts] == [1], n


async def test_what_a_failed_run_claimed_and_did_not_try_is_queued_again_behind_it(
    sessionmaker: async_sessionmaker[AsyncSession],
    enqueue: Enqueue,
    make_worker: WorkerFactory,
    clock: UTCClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids = [await enqueue(f"line {n}", category=Category.SYSTEM, created_offset=n) for n in range(3)]
    worker = make_worker()

    async def broken(self: Deliverer, claimed: Claimed) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(Deliverer, "deliver_claimed", broken)

    with pytest.raises(RuntimeError):
        await worker.run_once()

    # The first was being tried when it broke: its lease runs out as before. The other two
    # are queued again now (no longer leased: they may be erased meanwhile), due when that
    # lease runs out, so as not to overtake the first.
    first = await load(sessionmaker, ids[0])
    assert first.status == MessageStatus.SENDING
    assert first.claimed_until is not None
    assert first.claimed_until > clock()
    for message_id in ids[1:]:
        message = await load(sessionmaker, message_id)
        assert message.status == MessageStatus.QUEUED
        assert message.claimed_until is None
        assert message.next_attempt_at == first.claimed_until


def _calls_of(monkeypatch: pytest.MonkeyPatch, method: str) -> list[TelegramChannel]:
    """Replaces `TelegramChannel.<method>` (taking no argument) with one that records calls."""
    calls: list[TelegramChannel] = []

    def record(self: TelegramChannel) -> None:
        calls.append(self)

    monkeypatch.setattr(TelegramChannel, method, record)
    return calls


async def test_every_run_sweeps_out_rendered_text_past_its_time(
    make_worker: WorkerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # So that the memo's bound holds when no other long message comes to be rendered.
    swept = _calls_of(monkeypatch, "forget_expired_renders")
    worker = make_worker()
    await worker.run_once()
    await worker.run_once()
    assert len(swept) == 2


async def test_forget_rendered_empties_the_telegram_channels_memo(
    make_worker: WorkerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    cleared = _calls_of(monkeypatch, "forget_all_rendered")
    make_worker().forget_rendered()
    assert len(cleared) == 1
