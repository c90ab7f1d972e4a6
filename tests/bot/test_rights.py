"""/retention, /export and /erase through the sandbox: what is stored, what the document holds,
and that erasure leaves no row about the person (tests.person_rows) while others keep theirs."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiogram.types import InlineKeyboardMarkup
from sqlalchemy import select

from bot import keyboards, texts
from sandbox.client import MessageView
from storage.enums import AttemptOutcome, Category, Channel, MessageStatus, Priority
from storage.models import ApiToken, DeliveryAttempt, Message, User, UserPreferences
from storage.repositories import copies, person_data
from storage.types import utcnow
from tests.bot.conftest import RunningBot, buttons, has_text
from tests.bot.test_tokens import new_token
from tests.person_rows import footprint_of, references_to

# --- helpers ----------------------------------------------------------------------------------


async def user_of(running: RunningBot, telegram_id: int) -> User | None:
    async with running.sessionmaker() as session:
        return await session.scalar(select(User).where(User.telegram_id == telegram_id))


async def db_id(running: RunningBot, telegram_id: int) -> int:
    user = await user_of(running, telegram_id)
    assert user is not None
    return user.id


async def stored_retention(running: RunningBot, telegram_id: int) -> int | None:
    async with running.sessionmaker() as session:
        row = await session.get(UserPreferences, await db_id(running, telegram_id))
        return None if row is None else row.default_retention_seconds


async def add_message(running: RunningBot, telegram_id: int, *, delivered: bool) -> str:
    """A message record for the person, as the worker leaves it (content only while queued)."""
    user_id = await db_id(running, telegram_id)
    async with running.sessionmaker() as session, session.begin():
        token_id = await session.scalar(select(ApiToken.id).where(ApiToken.owner_id == user_id))
        message = Message(
            id=str(uuid.uuid4()),
            sender_token_id=token_id,
            recipient_id=user_id,
            category=Category.SYSTEM,
            priority=Priority.NORMAL,
            status=MessageStatus.DELIVERED if delivered else MessageStatus.QUEUED,
            encrypted_content=None if delivered else b"sealed",
            retention_expires_at=utcnow() + timedelta(days=1),
            delivered_at=utcnow() if delivered else None,
        )
        session.add(message)
        await session.flush()
        if delivered:
            session.add(
                DeliveryAttempt(
                    message_id=message.id,
                    channel=Channel.TELEGRAM,
                    attempt=1,
                    outcome=AttemptOutcome.DELIVERED,
                    external_id="1",
                )
            )
        return message.id


async def post_in_log(
    running: RunningBot, telegram_id: int, group_id: int, count: int, *, hours_ago: float = 0
) -> list[int]:
    """`count` bot messages in the person's log, recorded as delivered copies (sent
    `hours_ago`, as far as the gateway knows); their Telegram ids."""
    user_id = await db_id(running, telegram_id)
    sent = [await running.bot.send_message(group_id, f"log entry {n}") for n in range(count)]
    ids = [m.message_id for m in sent]
    async with running.sessionmaker() as session, session.begin():
        for telegram_message_id in ids:
            copies.add(
                session,
                user_id=user_id,
                message_id=None,
                chat_id=group_id,
                telegram_ids=[telegram_message_id],
                sent_at=utcnow() - timedelta(hours=hours_ago),
                delete_at=None,
            )
    return ids


async def a_full_person(running: RunningBot, name: str) -> tuple[int, int]:
    """Registered, with a personal log, a token, a retention setting, a delivered message
    (attempt and log copies) and a queued one; (telegram id, group chat id)."""
    telegram_id = await running.register(name)
    group_id = await running.forum_log(telegram_id, f"{name}'s log")
    await new_token(running, telegram_id)
    await running.reply_after(telegram_id, telegram_id, "/retention 7d", saved)
    await add_message(running, telegram_id, delivered=True)
    await add_message(running, telegram_id, delivered=False)
    await post_in_log(running, telegram_id, group_id, 2)
    return telegram_id, group_id


def saved(message: MessageView) -> bool:
    return has_text(message, "Saved.")


def refused(message: MessageView) -> bool:
    return has_text(message, "for example")


def data_of(message: MessageView, label: str) -> str:
    [data] = [data for text, data in buttons(message) if text == label]
    return data


async def ask_erase(running: RunningBot, telegram_id: int) -> MessageView:
    return await running.reply_after(
        telegram_id, telegram_id, "/erase", lambda m: has_text(m, "Erase everything")
    )


async def redrawn(running: RunningBot, chat_id: int, message: MessageView) -> MessageView:
    return (await running.control.get_chat(chat_id)).message(message.message_id)


# --- /retention -------------------------------------------------------------------------------


async def test_retention_shows_and_sets_the_default(running: RunningBot) -> None:
    ada = await running.register("Ada")
    shown = await running.reply_after(ada, ada, "/retention", lambda m: has_text(m, "retention"))
    assert "1 d" in (shown.text or "")
    assert "gateway's default" in (shown.text or "")
    assert "/retention 7d" in (shown.text or "")
    async with running.sessionmaker() as session:  # showing stores nothing
        assert await session.get(UserPreferences, await db_id(running, ada)) is None

    for command, seconds, label in [
        ("/retention 90m", 5400, "1 h 30 min"),
        ("/retention 2h", 7200, "2 h"),
        ("/retention 7d", 604_800, "7 d"),
        ("/retention 3600", 3600, "1 h"),
        ("/retention 1d12h", 129_600, "1 d 12 h"),
        ("/retention 1m", 60, "1 min"),
        ("/retention 30d", 2_592_000, "30 d"),
    ]:
        reply = await running.reply_after(ada, ada, command, saved)
        assert f"<b>{label}</b>" not in (reply.text or "")  # HTML was parsed, not shown
        assert label in (reply.text or ""), command
        assert "your setting" in (reply.text or "")
        assert await stored_retention(running, ada) == seconds, command

    shown = await running.reply_after(ada, ada, "/retention", lambda m: has_text(m, "30 d"))
    assert "your setting" in (shown.text or "")

    reply = await running.reply_after(ada, ada, "/retention default", saved)
    assert "1 d" in (reply.text or "")
    assert "gateway's default" in (reply.text or "")
    assert await stored_retention(running, ada) is None


async def test_retention_refuses_bad_periods_and_keeps_the_setting(running: RunningBot) -> None:
    ada = await running.register("Ada")
    await running.reply_after(ada, ada, "/retention 2h", saved)
    for bad in ("30s", "0", "31d", "30d1s", "soon", "2h1d", "1.5h", "-5m", "2 h junk"):
        reply = await running.reply_after(ada, ada, f"/retention {bad}", refused)
        text = reply.text or ""
        assert "/retention 7d" in text
        assert "/retention default" in text
        assert "Saved" not in text
        assert await stored_retention(running, ada) == 7200, bad


async def test_retention_export_erase_need_registration_and_a_private_chat(
    running: RunningBot,
) -> None:
    stranger = await running.control.create_user("Eve")
    for command in ("/retention 2h", "/export", "/erase"):
        reply = await running.reply_after(stranger, stranger, command, lambda m: True)
        assert "/start" in (reply.text or ""), command
        assert reply.document is None
    assert await user_of(running, stranger) is None

    ada = await running.register("Ada")
    group_id = await running.control.create_group("Club", owner_id=ada, is_forum=True)
    await running.control.set_bot_membership(group_id, by_id=ada, status="member")
    for command in ("/retention 2h", "/export", "/erase"):
        reply = await running.reply_after(
            ada, group_id, command, lambda m: has_text(m, "private chat")
        )
        assert reply.document is None
        assert reply.reply_markup is None
    async with running.sessionmaker() as session:
        assert (await session.scalars(select(UserPreferences))).all() == []


# --- /export ----------------------------------------------------------------------------------


async def test_export_sends_a_json_document_with_the_persons_data(running: RunningBot) -> None:
    ada, ada_group = await a_full_person(running, "Ada")
    bo, bo_group = await a_full_person(running, "Bo")
    ada_id = await db_id(running, ada)

    reply = await running.reply_after(ada, ada, "/export", lambda m: m.document is not None)
    assert reply.document is not None
    assert re.fullmatch(r"libral-export-\d{4}-\d{2}-\d{2}\.json", reply.document["file_name"])
    assert reply.caption is not None
    assert "JSON" in reply.caption
    raw = (await running.bot.download(reply.document["file_id"])).read()  # type: ignore[union-attr]
    document = json.loads(raw)

    assert document["format_version"] == 1
    assert document["exported_at"][:10] in reply.document["file_name"]
    assert document["profile"]["id"] == ada_id
    assert document["profile"]["telegram_id"] == ada
    assert document["preferences"]["default_retention_seconds"] == 604_800
    assert document["log_group"]["chat_id"] == ada_group
    assert {t["category"] for t in document["log_group"]["topics"]} == {c.value for c in Category}
    async with running.sessionmaker() as session:
        tokens = (await session.scalars(select(ApiToken).where(ApiToken.owner_id == ada_id))).all()
        messages = (
            await session.scalars(select(Message).where(Message.recipient_id == ada_id))
        ).all()
        all_hashes = (await session.scalars(select(ApiToken.token_hash))).all()
    assert [t["prefix"] for t in document["api_tokens"]] == [t.prefix for t in tokens]
    assert {m["id"] for m in document["messages"]} == {m.id for m in messages}
    assert sorted(m["content_stored"] for m in document["messages"]) == [False, True]
    assert [len(m["attempts"]) for m in document["messages"] if m["status"] == "delivered"] == [1]
    assert len(document["telegram_copies"]) == 2
    assert {c["chat_id"] for c in document["telegram_copies"]} == {ada_group}

    text = raw.decode()
    for token_hash in all_hashes:
        assert token_hash not in text
    assert "token_hash" not in text
    assert "sealed" not in text
    bo_id = await db_id(running, bo)
    assert str(bo) not in text
    assert str(bo_group) not in text
    async with running.sessionmaker() as session:
        bo_tokens = (
            await session.scalars(select(ApiToken).where(ApiToken.owner_id == bo_id))
        ).all()
        bo_messages = (
            await session.scalars(select(Message.id).where(Message.recipient_id == bo_id))
        ).all()
    for value in [t.prefix for t in bo_tokens] + list(bo_messages):
        assert value not in text


# --- /erase -----------------------------------------------------------------------------------


async def test_erase_asks_first_and_then_leaves_nothing_behind(running: RunningBot) -> None:
    ada, ada_group = await a_full_person(running, "Ada")
    bo, _ = await a_full_person(running, "Bo")
    person = await footprint_of(running.sessionmaker, await db_id(running, ada))
    bo_person = await footprint_of(running.sessionmaker, await db_id(running, bo))
    assert await references_to(running.sessionmaker, person) != []  # the check can fail

    question = await ask_erase(running, ada)
    assert [label for label, _ in buttons(question)] == [
        texts.ERASE_BUTTON,
        texts.ERASE_WITH_LOG_BUTTON,
        texts.ERASE_CANCEL_BUTTON,
    ]
    assert await user_of(running, ada) is not None  # asking erases nothing

    answer = await running.press(ada, ada, question, data_of(question, texts.ERASE_BUTTON))
    assert answer["show_alert"] is False
    done = await redrawn(running, ada, question)
    assert "Erased" in (done.text or "")
    assert "log" in (done.text or "")
    assert "deleted" not in (done.text or "")  # no log deletion was asked for
    assert done.reply_markup is None

    assert await references_to(running.sessionmaker, person) == []
    assert await user_of(running, ada) is None
    # the bot's messages in the log stay: only the second button deletes them
    assert len((await running.control.get_chat(ada_group)).bot_messages()) >= 2
    # Bo keeps everything
    after = await footprint_of(running.sessionmaker, await db_id(running, bo))
    assert {n: set(r) for n, r in after.rows.items()} == {
        n: set(r) for n, r in bo_person.rows.items()
    }
    # Ada can start over
    reply = await running.reply_after(ada, ada, "/start", lambda m: True)
    assert reply.text is not None
    assert await user_of(running, ada) is not None


async def test_erase_with_the_log_deletes_the_bots_recent_messages(running: RunningBot) -> None:
    ada, ada_group = await a_full_person(running, "Ada")
    recent = await post_in_log(running, ada, ada_group, 3)
    too_old = await post_in_log(running, ada, ada_group, 1, hours_ago=49)
    async with running.sessionmaker() as session:
        held = await copies.of_user(session, await db_id(running, ada))
    young = sorted(c.telegram_message_id for c in held if c.telegram_message_id not in too_old)
    assert set(recent) <= set(young)
    person = await footprint_of(running.sessionmaker, await db_id(running, ada))

    question = await ask_erase(running, ada)
    answer = await running.press(ada, ada, question, data_of(question, texts.ERASE_WITH_LOG_BUTTON))
    assert answer["show_alert"] is False
    done = await redrawn(running, ada, question)
    assert f"{len(young)} deleted" in (done.text or "")
    assert "1 could not be deleted" in (done.text or "")
    assert done.reply_markup is None

    chat = await running.control.get_chat(ada_group)
    for message_id in young:
        assert chat.message(message_id).deleted_at is not None, message_id
    # older than 48 hours as far as the gateway knows: not even tried
    assert chat.message(too_old[0]).deleted_at is None
    # the welcome is no message the gateway delivered: not touched
    assert any(has_text(m, "now your personal log") for m in chat.bot_messages())
    calls = [c for c in await running.control.get_calls() if c.method == "deleteMessages"]
    assert [sorted(c.params["message_ids"]) for c in calls] == [young]
    assert await references_to(running.sessionmaker, person) == []


async def test_erase_still_erases_when_telegram_refuses_the_deletion(running: RunningBot) -> None:
    ada, ada_group = await a_full_person(running, "Ada")
    person = await footprint_of(running.sessionmaker, await db_id(running, ada))
    question = await ask_erase(running, ada)
    await running.control.add_fault(
        "deleteMessages", error_code=500, description="Internal Server Error", times=1
    )
    await running.press(ada, ada, question, data_of(question, texts.ERASE_WITH_LOG_BUTTON))
    done = await redrawn(running, ada, question)
    assert "0 deleted, 2 could not be deleted" in (done.text or "")
    assert len((await running.control.get_chat(ada_group)).bot_messages()) >= 2
    assert await references_to(running.sessionmaker, person) == []


async def test_cancel_keeps_everything(running: RunningBot) -> None:
    ada, _ = await a_full_person(running, "Ada")
    before = await footprint_of(running.sessionmaker, await db_id(running, ada))
    question = await ask_erase(running, ada)
    answer = await running.press(ada, ada, question, data_of(question, texts.ERASE_CANCEL_BUTTON))
    assert answer["show_alert"] is False
    done = await redrawn(running, ada, question)
    assert done.text == texts.ERASE_CANCELLED
    assert done.reply_markup is None
    after = await footprint_of(running.sessionmaker, await db_id(running, ada))
    assert after == before


async def test_foreign_and_stale_presses_get_alerts(running: RunningBot) -> None:
    ada, _ = await a_full_person(running, "Ada")
    bo = await running.register("Bo")
    before = await footprint_of(running.sessionmaker, await db_id(running, ada))

    # Ada's very buttons end up in front of Bo (e.g. a copy of the message)
    planted = await running.bot.send_message(
        bo, "an erase question", reply_markup=keyboards.erase_confirmation(ada)
    )
    copy = (await running.control.get_chat(bo)).message(planted.message_id)
    for label in (texts.ERASE_BUTTON, texts.ERASE_WITH_LOG_BUTTON, texts.ERASE_CANCEL_BUTTON):
        answer = await running.press(bo, bo, copy, data_of(copy, label))
        assert answer["show_alert"] is True
        assert answer["text"] == texts.ERASE_NOT_YOURS
    assert (await redrawn(running, bo, copy)).text == "an erase question"
    assert await footprint_of(running.sessionmaker, await db_id(running, ada)) == before
    assert await user_of(running, bo) is not None

    # two questions; the first one erases, the second one's buttons are stale then
    first, second = await ask_erase(running, ada), await ask_erase(running, ada)
    await running.press(ada, ada, first, data_of(first, texts.ERASE_BUTTON))
    assert await user_of(running, ada) is None
    for label in (texts.ERASE_BUTTON, texts.ERASE_WITH_LOG_BUTTON, texts.ERASE_CANCEL_BUTTON):
        answer = await running.press(ada, ada, second, data_of(second, label))
        assert answer["show_alert"] is True
        assert answer["text"] == texts.ERASE_NOTHING_LEFT
    still = await redrawn(running, ada, second)
    assert still.text == second.text  # not "Nothing was erased": it was
    assert await references_to(running.sessionmaker, before) == []
    assert await user_of(running, bo) is not None


def test_the_erase_keyboard_carries_the_owner() -> None:
    markup = keyboards.erase_confirmation(42)
    assert isinstance(markup, InlineKeyboardMarkup)
    data = [b.callback_data for row in markup.inline_keyboard for b in row]
    assert data == ["erase:42:0", "erase:42:1", "erase_keep:42"]


async def test_plain_erase_still_carries_out_promised_deletions(running: RunningBot) -> None:
    """Self-destructing and unread ephemeral messages go now: erasing their schedule must not
    leave them in the log for good. Other log messages stay (only the second button)."""
    ada, ada_group = await a_full_person(running, "Ada")
    [kept] = await post_in_log(running, ada, ada_group, 1)
    [due] = await post_in_log(running, ada, ada_group, 1)
    async with running.sessionmaker() as session, session.begin():
        await copies.schedule(
            session,
            [
                c.id
                for c in await copies.of_user(session, await db_id(running, ada))
                if c.telegram_message_id == due
            ],
            utcnow() + timedelta(hours=5),
        )
    question = await ask_erase(running, ada)
    await running.press(ada, ada, question, data_of(question, texts.ERASE_BUTTON))
    done = await redrawn(running, ada, question)
    assert "Erased" in (done.text or "")
    chat = await running.control.get_chat(ada_group)
    assert chat.message(due).deleted_at is not None
    assert chat.message(kept).deleted_at is None
    assert await user_of(running, ada) is None


async def test_erase_waits_while_a_message_is_being_sent(running: RunningBot) -> None:
    ada, _ = await a_full_person(running, "Ada")
    message_id = await add_message(running, ada, delivered=False)
    async with running.sessionmaker() as session, session.begin():
        row = await session.get(Message, message_id)
        assert row is not None
        row.status = MessageStatus.SENDING
        row.claimed_until = utcnow() + timedelta(minutes=1)
    question = await ask_erase(running, ada)
    answer = await running.press(ada, ada, question, data_of(question, texts.ERASE_BUTTON))
    assert answer["show_alert"] is True
    assert answer["text"] == texts.ERASE_BUSY
    assert await user_of(running, ada) is not None


def _while_the_log_is_cleared(
    monkeypatch: pytest.MonkeyPatch, meanwhile: Callable[[], Awaitable[None]]
) -> None:
    """Run `meanwhile` once, as /erase lists the bot's messages to delete (after its first
    check for a message being sent, before its DELETE)."""
    find = person_data.deletable_copies
    done: list[bool] = []

    async def listing(*args: Any, **kwargs: Any) -> dict[int, list[int]]:
        if not done:
            done.append(True)
            await meanwhile()
        return await find(*args, **kwargs)

    monkeypatch.setattr(person_data, "deletable_copies", listing)


async def test_a_message_claimed_while_the_log_is_cleared_stops_the_erase(
    running: RunningBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check before deleting the bot's messages is not enough: a worker can claim a message
    to the person while those deletions run (seconds), and would send it into the log of a
    person being forgotten. The erase itself refuses then."""
    ada, _ = await a_full_person(running, "Ada")
    message_id = await add_message(running, ada, delivered=False)

    async def claim() -> None:
        async with running.sessionmaker() as session, session.begin():
            row = await session.get(Message, message_id)
            assert row is not None
            row.status = MessageStatus.SENDING
            row.claimed_until = utcnow() + timedelta(minutes=1)

    _while_the_log_is_cleared(monkeypatch, claim)
    question = await ask_erase(running, ada)
    answer = await running.press(ada, ada, question, data_of(question, texts.ERASE_WITH_LOG_BUTTON))
    assert answer["show_alert"] is True
    assert answer["text"] == texts.ERASE_BUSY
    assert await user_of(running, ada) is not None


async def _deliver_into_log(
    running: RunningBot, user_id: int, group: int, sent_at: datetime | None = None
) -> int:
    """A message the bot sends into the person's log and records, as a delivery does (sent
    now, or at `sent_at`); its Telegram id."""
    message = await running.bot.send_message(group, "delivered meanwhile")
    async with running.sessionmaker() as session, session.begin():
        copies.add(
            session,
            user_id=user_id,
            message_id=None,
            chat_id=group,
            telegram_ids=[message.message_id],
            sent_at=sent_at or utcnow(),
            delete_at=None,
        )
    return message.message_id


async def _busy_then_erased(
    running: RunningBot, person: int, group: int, delivered_meanwhile: list[int]
) -> None:
    """/erase with the log refuses once (ERASE_BUSY), and the next press erases the person and
    deletes the message delivered meanwhile too."""
    question = await ask_erase(running, person)
    button = data_of(question, texts.ERASE_WITH_LOG_BUTTON)
    answer = await running.press(person, person, question, button)
    assert answer["text"] == texts.ERASE_BUSY
    assert await user_of(running, person) is not None
    answer = await running.press(person, person, question, button)
    assert answer["show_alert"] is False
    assert await user_of(running, person) is None
    assert len(delivered_meanwhile) == 1
    chat = await running.control.get_chat(group)
    assert chat.message(delivered_meanwhile[0]).deleted_at is not None


async def test_a_message_sent_while_the_log_is_cleared_stops_the_erase_until_pressed_again(
    running: RunningBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A message claimed and delivered while the bot deletes its messages in the log would stay
    there, its record erased: the erase refuses, and the next press deletes it too."""
    ada, ada_group = await a_full_person(running, "Ada")
    user_id = await db_id(running, ada)
    sent: list[int] = []

    async def deliver() -> None:
        sent.append(await _deliver_into_log(running, user_id, ada_group))

    _while_the_log_is_cleared(monkeypatch, deliver)
    await _busy_then_erased(running, ada, ada_group, sent)


async def test_a_message_sent_before_the_listing_but_recorded_after_it_stops_the_erase(
    running: RunningBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A send is recorded in a commit a little after it (shared with the deliveries finishing
    with it). One sent after /erase's check for a message being sent, just before it listed
    the log's messages, and recorded just after the listing, is not listed: the erase refuses,
    and the next press deletes it too."""
    ada, ada_group = await a_full_person(running, "Ada")
    user_id = await db_id(running, ada)
    sent: list[int] = []
    sent_at: list[datetime] = []
    check, find = person_data.being_sent, person_data.deletable_copies

    async def checked_then_sent(*args: Any, **kwargs: Any) -> bool:
        busy = await check(*args, **kwargs)
        if not sent_at:
            sent_at.append(utcnow())  # claimed after the check read, sent at once
        return busy

    async def listed_then_recorded(*args: Any, **kwargs: Any) -> dict[int, list[int]]:
        listed = await find(*args, **kwargs)
        if not sent:
            sent.append(await _deliver_into_log(running, user_id, ada_group, sent_at[0]))
        return listed

    monkeypatch.setattr(person_data, "being_sent", checked_then_sent)
    monkeypatch.setattr(person_data, "deletable_copies", listed_then_recorded)
    await _busy_then_erased(running, ada, ada_group, sent)
