"""/prefs through the sandbox: presses edit the same message and store the setting; stale or
foreign presses get an alert and change nothing."""

from __future__ import annotations

from typing import Any

import pytest
from aiogram import Bot
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.methods import EditMessageText, TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from sqlalchemy import delete, select

from bot import texts
from bot.callbacks import PrefsMove, PrefsNav, PrefsSet, PrefsZone
from bot.prefs_menu import CLOSED_TEXT
from gateway.preferences import to_preferences
from sandbox.client import MessageView
from sandbox.methods.messages import NOT_MODIFIED
from storage.enums import Category, Channel
from storage.models import User, UserPreferences
from tests.bot.conftest import RunningBot, buttons, has_text

SUMMARY = "Your preferences"


async def _row(running: RunningBot, telegram_id: int) -> UserPreferences | None:
    async with running.sessionmaker() as session:
        user = (
            await session.scalars(select(User).where(User.telegram_id == telegram_id))
        ).one_or_none()
        return None if user is None else await session.get(UserPreferences, user.id)


async def _stored(running: RunningBot, telegram_id: int) -> UserPreferences:
    row = await _row(running, telegram_id)
    assert row is not None
    return row


async def open_menu(running: RunningBot, user_id: int) -> MessageView:
    return await running.reply_after(user_id, user_id, "/prefs", lambda m: has_text(m, SUMMARY))


class Menu:
    """One person's menu message; every press must edit this very message."""

    def __init__(self, running: RunningBot, user_id: int, message: MessageView) -> None:
        self.running, self.user_id, self.message = running, user_id, message

    def data(self, label: str) -> str:
        matches = [data for text, data in buttons(self.message) if text == label]
        assert matches, f"no button {label!r} in {[t for t, _ in buttons(self.message)]}"
        return matches[0]

    async def press(self, label: str) -> dict[str, Any]:
        """Press the button labelled `label`; the answer, with `self.message` redrawn."""
        return await self.press_data(self.data(label))

    async def press_data(self, data: str) -> dict[str, Any]:
        answer = await self.running.press(self.user_id, self.user_id, self.message, data)
        chat = await self.running.control.get_chat(self.user_id)
        self.message = chat.message(self.message.message_id)
        return answer

    async def bot_message_count(self) -> int:
        return len((await self.running.control.get_chat(self.user_id)).bot_messages())


async def menu_of(running: RunningBot, user_id: int) -> Menu:
    return Menu(running, user_id, await open_menu(running, user_id))


def saved(answer: dict[str, Any]) -> bool:
    return answer["show_alert"] is False and answer["text"] == texts.PREFS_SAVED


async def test_prefs_opens_the_summary(running: RunningBot) -> None:
    user = await running.register("Ada")
    menu = await menu_of(running, user)
    text = menu.message.text or ""
    assert "off: Plugin" in text
    assert "Telegram → Email → Webhook → SMS → Push" in text
    assert "22:00–08:00 (Asia/Tokyo), silent" in text
    assert [label for label, _ in buttons(menu.message)] == [
        "📂 Categories",
        "📡 Channels",
        "🌙 Quiet hours",
        "🔒 Privacy",
        "✖️ Close",
    ]


async def test_category_toggle_edits_in_place_and_stores(running: RunningBot) -> None:
    user = await running.register("Ada")
    menu = await menu_of(running, user)
    messages = await menu.bot_message_count()
    first_id = menu.message.message_id

    answer = await menu.press("📂 Categories")
    assert answer["show_alert"] is False
    assert "<b>Categories</b>" not in (menu.message.text or "")  # parsed as HTML
    assert "Categories" in (menu.message.text or "")
    assert menu.message.edited_at is not None

    assert saved(await menu.press("🚫 Plugin"))
    assert menu.message.message_id == first_id
    labels = [label for label, _ in buttons(menu.message)]
    assert "✅ Plugin" in labels
    assert "🚫 Plugin" not in labels
    row = await _stored(running, user)
    assert row.categories == {"plugin": True}
    assert to_preferences(row).categories[Category.PLUGIN] is True

    assert saved(await menu.press("✅ Security alerts"))
    assert "🚫 Security alerts" in [label for label, _ in buttons(menu.message)]
    row = await _stored(running, user)
    assert to_preferences(row).categories[Category.AUTH] is False

    await menu.press("⬅️ Back")
    assert SUMMARY in (menu.message.text or "")
    assert "off: Security alerts" in (menu.message.text or "")
    assert await menu.bot_message_count() == messages  # no new message, only edits


class StoredWhenEdited(BaseRequestMiddleware):
    """Reads the person's stored row (another connection) as each editMessageText goes out."""

    def __init__(self, running: RunningBot, telegram_id: int) -> None:
        self.running, self.telegram_id = running, telegram_id
        self.seen: list[UserPreferences | None] = []

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Any:
        if isinstance(method, EditMessageText):
            self.seen.append(await _row(self.running, self.telegram_id))
        return await make_request(bot, method)


async def test_change_is_committed_before_the_menu_shows_it(running: RunningBot) -> None:
    user = await running.register("Ada")
    menu = await menu_of(running, user)
    await menu.press("🌙 Quiet hours")
    spy = StoredWhenEdited(running, user)
    running.bot.session.middleware(spy)
    assert saved(await menu.press("🔕 Mode: silent"))
    [row] = spy.seen
    assert row is not None
    assert row.quiet_mode == "defer"


async def test_channels_move_and_toggle(running: RunningBot) -> None:
    user = await running.register("Ada")
    menu = await menu_of(running, user)
    await menu.press("📡 Channels")
    assert "/email, /webhook, /phone, /push" in (menu.message.text or "")

    # ⬇️ of the first row (Telegram): rows are [toggle, (⬆️), (⬇️)]
    down_telegram = PrefsMove(owner_id=user, channel="telegram", up=False).pack()
    assert saved(await menu.press_data(down_telegram))
    row = await _stored(running, user)
    assert row.channel_order == ["email", "telegram", "webhook", "sms", "push"]
    assert "1. Email (on)\n2. Telegram (on)" in (menu.message.text or "")

    up_sms = PrefsMove(owner_id=user, channel="sms", up=True).pack()
    assert saved(await menu.press_data(up_sms))
    row = await _stored(running, user)
    assert row.channel_order == ["email", "telegram", "sms", "webhook", "push"]
    assert to_preferences(row).channel_order[:3] == (Channel.EMAIL, Channel.TELEGRAM, Channel.SMS)

    assert saved(await menu.press("✅ Webhook"))
    assert "🚫 Webhook" in [label for label, _ in buttons(menu.message)]
    assert (await _stored(running, user)).disabled_channels == ["webhook"]
    # the first channel has no ⬆️ any more: Email's row is its toggle and ⬇️ only
    rows = menu.message.reply_markup["inline_keyboard"]  # type: ignore[index]
    assert [b["text"] for b in rows[0]] == ["✅ Email", "⬇️"]


async def test_quiet_hours_and_time_zone(running: RunningBot) -> None:
    user = await running.register("Ada")
    menu = await menu_of(running, user)
    await menu.press("🌙 Quiet hours")
    assert "/quiet 22:00 07:30" in (menu.message.text or "")

    assert saved(await menu.press("🔕 Mode: silent"))
    assert "⏳ Mode: defer" in [label for label, _ in buttons(menu.message)]
    assert (await _stored(running, user)).quiet_mode == "defer"

    assert saved(await menu.press("✅ Urgent bypass"))
    assert saved(await menu.press("✅ Quiet hours on"))
    row = await _stored(running, user)
    assert (row.urgent_bypass, row.quiet_enabled, row.quiet_mode) == (False, False, "defer")
    assert to_preferences(row).quiet is None

    await menu.press("🕰 Time zone: Asia/Tokyo")
    labels = [label for label, _ in buttons(menu.message)]
    assert "✅ Asia/Tokyo" in labels
    assert "Europe/Berlin" in labels
    assert saved(await menu.press("Europe/Berlin"))
    assert (await _stored(running, user)).timezone == "Europe/Berlin"
    assert "🕰 Time zone: Europe/Berlin" in [label for label, _ in buttons(menu.message)]

    await menu.press("⬅️ Back")
    assert "off (time zone Europe/Berlin)" in (menu.message.text or "")


async def test_privacy_toggles_and_close(running: RunningBot) -> None:
    user = await running.register("Ada")
    menu = await menu_of(running, user)
    await menu.press("🔒 Privacy")
    assert saved(await menu.press("🚫 Ephemeral by default"))
    assert saved(await menu.press("🚫 Read receipts"))
    assert saved(await menu.press("🚫 Content in the log's audit lines"))
    row = await _stored(running, user)
    assert (row.default_ephemeral, row.read_receipts, row.audit_with_content) == (True, True, True)
    assert [label for label, _ in buttons(menu.message)] == [
        "✅ Ephemeral by default",
        "✅ Read receipts",
        "✅ Content in the log's audit lines",
        "⬅️ Back",
    ]
    await menu.press("⬅️ Back")
    assert "ephemeral by default on, read receipts on" in (menu.message.text or "")

    answer = await menu.press("✖️ Close")
    assert answer["show_alert"] is False
    assert menu.message.text == CLOSED_TEXT
    assert menu.message.reply_markup is None


async def test_prefs_needs_registration_and_a_private_chat(running: RunningBot) -> None:
    stranger = await running.control.create_user("Eve")
    reply = await running.reply_after(stranger, stranger, "/prefs", lambda m: True)
    assert reply.text == texts.NOT_REGISTERED

    owner = await running.register("Ada")
    group_id = await running.control.create_group("Club", owner_id=owner)
    await running.control.set_bot_membership(group_id, by_id=owner, status="member")
    reply = await running.reply_after(owner, group_id, "/prefs", lambda m: has_text(m, "/prefs"))
    assert reply.text == texts.PREFS_PRIVATE_ONLY
    assert not has_text(reply, SUMMARY)


async def _plant(running: RunningBot, chat_id: int, markup: InlineKeyboardMarkup) -> Menu:
    """A bot message carrying `markup` in `chat_id`'s private chat (buttons the menu of this
    version would not draw there: someone else's, or an older version's)."""
    sent = await running.bot.send_message(chat_id, "an old menu", reply_markup=markup)
    chat = await running.control.get_chat(chat_id)
    return Menu(running, chat_id, chat.message(sent.message_id))


def _markup(*data: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text=f"b{i}", callback_data=d)] for i, d in enumerate(data)
        ]
    )


async def test_foreign_press_gets_an_alert_and_changes_nothing(running: RunningBot) -> None:
    ada = await running.register("Ada")
    bo = await running.register("Bo")
    ada_menu = await menu_of(running, ada)
    await ada_menu.press("📂 Categories")
    # Ada's very buttons end up in front of Bo (e.g. a copy of the message)
    markup = InlineKeyboardMarkup.model_validate(ada_menu.message.reply_markup)
    copy = await _plant(running, bo, markup)
    before = await _row(running, ada)

    answer = await copy.press("🚫 Plugin")
    assert answer == {**answer, "show_alert": True, "text": texts.PREFS_NOT_YOURS}
    answer = await copy.press("⬅️ Back")
    assert answer["text"] == texts.PREFS_NOT_YOURS
    assert copy.message.text == "an old menu"
    assert copy.message.edited_at is None
    after = await _row(running, ada)
    assert before is not None
    assert after is not None
    assert after.categories == before.categories == {}
    assert await _row(running, bo) is None


async def test_press_after_the_person_is_gone(running: RunningBot) -> None:
    user = await running.register("Ada")
    menu = await menu_of(running, user)
    await menu.press("📂 Categories")
    async with running.sessionmaker() as session, session.begin():
        await session.execute(delete(User).where(User.telegram_id == user))
    edited_at = menu.message.edited_at

    answer = await menu.press("🚫 Plugin")
    assert answer["show_alert"] is True
    assert answer["text"] == texts.PREFS_NOT_REGISTERED
    assert menu.message.edited_at == edited_at
    async with running.sessionmaker() as session:
        assert (await session.scalars(select(UserPreferences))).all() == []


@pytest.mark.parametrize(
    "stale",
    [
        PrefsSet(owner_id=0, setting="cat", key="spam", on=True),
        PrefsSet(owner_id=0, setting="volume", key="", on=True),
        PrefsMove(owner_id=0, channel="telegram", up=True),  # already first
        PrefsMove(owner_id=0, channel="push", up=False),  # already last
        PrefsMove(owner_id=0, channel="fax", up=True),
        PrefsZone(owner_id=0, zone="Mars/Olympus"),
        PrefsNav(owner_id=0, screen="nowhere"),
    ],
)
async def test_values_that_no_longer_apply_get_an_alert(
    running: RunningBot, stale: PrefsSet | PrefsMove | PrefsZone | PrefsNav
) -> None:
    user = await running.register("Ada")
    await open_menu(running, user)  # the row exists, with every default
    before = await _stored(running, user)
    old = await _plant(running, user, _markup(stale.model_copy(update={"owner_id": user}).pack()))

    answer = await old.press("b0")
    assert answer["show_alert"] is True
    assert answer["text"] == texts.PREFS_STALE_VALUE
    assert old.message.edited_at is None
    after = await _stored(running, user)
    assert (after.categories, after.channel_order, after.timezone) == (
        before.categories,
        before.channel_order,
        before.timezone,
    )
    assert (after.channel_order, after.timezone) == ([], "Asia/Tokyo")


@pytest.mark.parametrize("data", ["oldmenu:1:cats", "pfs:1:cat", "pfz", "x"])
async def test_buttons_no_router_understands_get_an_alert(running: RunningBot, data: str) -> None:
    user = await running.register("Ada")
    old = await _plant(running, user, _markup(data))
    answer = await old.press("b0")
    assert answer["show_alert"] is True
    assert answer["text"] == texts.UNKNOWN_BUTTON


async def test_message_not_modified_is_swallowed(running: RunningBot) -> None:
    user = await running.register("Ada")
    menu = await menu_of(running, user)
    await menu.press("📂 Categories")
    await running.control.add_fault(
        "editMessageText", error_code=400, description=f"Bad Request: {NOT_MODIFIED}", times=1
    )
    answer = await menu.press("🚫 Plugin")
    assert saved(answer)  # stored; the (double) press is answered normally, no error raised
    assert (await _stored(running, user)).categories == {"plugin": True}
    answer = await menu.press("⬅️ Back")  # and the next edit works as usual
    assert answer["show_alert"] is False
    assert SUMMARY in (menu.message.text or "")


async def test_menu_that_cannot_be_edited_any_more(running: RunningBot) -> None:
    user = await running.register("Ada")
    menu = await menu_of(running, user)
    await menu.press("🔒 Privacy")
    await running.control.add_fault(
        "editMessageText",
        error_code=400,
        description="Bad Request: message can't be edited",
        times=2,
    )
    answer = await menu.press("🚫 Read receipts")
    assert answer["show_alert"] is True
    assert answer["text"] == texts.PREFS_SAVED_MENU_GONE
    assert (await _stored(running, user)).read_receipts is True  # saved all the same
    answer = await menu.press("⬅️ Back")
    assert answer["show_alert"] is True
    assert answer["text"] == texts.PREFS_MENU_GONE
    assert "/prefs" in answer["text"]
