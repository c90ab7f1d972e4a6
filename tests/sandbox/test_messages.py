"""sendMessage, edits and deletions: Telegram's checks and error texts."""

from __future__ import annotations

import aiohttp
import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions

from sandbox.client import SandboxClient
from tests.sandbox.conftest import Scene, raw_call

KEYBOARD = InlineKeyboardMarkup(
    inline_keyboard=[[InlineKeyboardButton(text="Yes", callback_data="yes")]]
)


async def test_send_message_is_stored_with_its_options(
    bot: Bot, control: SandboxClient, scene: Scene
) -> None:
    sent = await bot.send_message(
        scene.user_id,
        "<b>Hello</b> Ada",
        parse_mode="HTML",
        reply_markup=KEYBOARD,
        disable_notification=True,
        link_preview_options=LinkPreviewOptions(is_disabled=True),
    )
    assert sent.text == "Hello Ada"
    assert sent.entities is not None
    assert sent.entities[0].type == "bold"
    assert sent.reply_markup is not None
    assert sent.reply_markup.model_dump(exclude_none=True) == KEYBOARD.model_dump(exclude_none=True)
    stored = (await control.get_chat(scene.user_id)).message(sent.message_id)
    assert stored.text == "Hello Ada"
    assert stored.parse_mode == "HTML"
    assert stored.disable_notification
    assert stored.link_preview_options == {"is_disabled": True}
    assert stored.reply_markup == KEYBOARD.model_dump(exclude_none=True)
    assert stored.from_bot


async def test_missing_required_field_is_a_bad_request(bot: Bot, scene: Scene) -> None:
    # aiogram leaves empty strings out of the form, so the text parameter is missing
    with pytest.raises(TelegramBadRequest, match=r"Bad Request: .*text"):
        await bot.send_message(scene.user_id, "")


async def test_html_and_markdown_parse_errors(bot: Bot, scene: Scene) -> None:
    with pytest.raises(TelegramBadRequest, match="can't parse entities"):
        await bot.send_message(scene.user_id, "<b>unclosed", parse_mode="HTML")
    with pytest.raises(TelegramBadRequest, match="can't parse entities"):
        await bot.send_message(scene.user_id, "Done.", parse_mode="MarkdownV2")
    ok = await bot.send_message(scene.user_id, "Done\\.", parse_mode="MarkdownV2")
    assert ok.text == "Done."


async def test_4096_characters_fit_and_4097_do_not(bot: Bot, scene: Scene) -> None:
    assert (await bot.send_message(scene.user_id, "a" * 4096)).text == "a" * 4096
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(scene.user_id, "a" * 4097)


async def test_thread_ids_must_be_live_topics(bot: Bot, scene: Scene) -> None:
    with pytest.raises(TelegramBadRequest, match="message thread not found"):
        await bot.send_message(scene.group_id, "x", message_thread_id=999)
    # General has no usable thread id: send without one to post there
    with pytest.raises(TelegramBadRequest, match="message thread not found"):
        await bot.send_message(scene.group_id, "x", message_thread_id=1)
    general = await bot.send_message(scene.group_id, "to General")
    assert general.message_thread_id is None
    assert not general.is_topic_message


async def test_bot_cannot_initiate_conversations(bot: Bot, control: SandboxClient) -> None:
    stranger = await control.create_user("Stranger")
    with pytest.raises(TelegramForbiddenError, match="bot can't initiate conversation"):
        await bot.send_message(stranger, "hello?")
    await control.send_message(stranger, stranger, "hi bot")
    assert (await bot.send_message(stranger, "hello!")).chat.id == stranger


async def test_unknown_chat_and_groups_without_the_bot(
    bot: Bot, control: SandboxClient, scene: Scene
) -> None:
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message(-1009999999999, "x")
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message("@nobody", "x")
    other = await control.create_group("Other", owner_id=scene.user_id, is_forum=False)
    with pytest.raises(TelegramForbiddenError, match="bot is not a member of the supergroup"):
        await bot.send_message(other, "x")
    await control.set_bot_membership(scene.group_id, by_id=scene.user_id, status="kicked")
    with pytest.raises(TelegramForbiddenError, match="bot was kicked from the supergroup chat"):
        await bot.send_message(scene.group_id, "x")


async def test_edit_message_text_and_not_modified(
    bot: Bot, control: SandboxClient, scene: Scene
) -> None:
    sent = await bot.send_message(scene.user_id, "draft", reply_markup=KEYBOARD)
    edited = await bot.edit_message_text(
        "final", chat_id=scene.user_id, message_id=sent.message_id, reply_markup=KEYBOARD
    )
    assert not isinstance(edited, bool)
    assert edited.text == "final"
    assert edited.edit_date is not None
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text(
            "final", chat_id=scene.user_id, message_id=sent.message_id, reply_markup=KEYBOARD
        )
    stored = (await control.get_chat(scene.user_id)).message(sent.message_id)
    assert stored.text == "final"
    assert stored.edited_at is not None
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("x", chat_id=scene.user_id, message_id=9999)
    user_message = await control.send_message(scene.user_id, scene.user_id, "mine")
    with pytest.raises(TelegramBadRequest, match="message can't be edited"):
        await bot.edit_message_text("x", chat_id=scene.user_id, message_id=user_message)


async def test_edit_reply_markup_not_modified_wording(bot: Bot, scene: Scene) -> None:
    sent = await bot.send_message(scene.user_id, "pick", reply_markup=KEYBOARD)
    with pytest.raises(TelegramBadRequest) as raised:
        await bot.edit_message_reply_markup(
            chat_id=scene.user_id, message_id=sent.message_id, reply_markup=KEYBOARD
        )
    assert raised.value.message == (
        "Bad Request: message is not modified: specified new message content and reply markup "
        "are exactly the same as a current content and reply markup of the message"
    )
    cleared = await bot.edit_message_reply_markup(chat_id=scene.user_id, message_id=sent.message_id)
    assert not isinstance(cleared, bool)
    assert cleared.reply_markup is None


async def test_delete_message_and_the_48_hour_rule(
    bot: Bot, control: SandboxClient, scene: Scene
) -> None:
    fresh = await bot.send_message(scene.user_id, "fresh")
    assert await bot.delete_message(scene.user_id, fresh.message_id)
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_message(scene.user_id, fresh.message_id)
    old = await bot.send_message(scene.user_id, "old")
    await control.advance_clock(48 * 3600 + 1)
    with pytest.raises(TelegramBadRequest, match="message can't be deleted"):
        await bot.delete_message(scene.user_id, old.message_id)
    stored = await control.get_chat(scene.user_id)
    assert stored.message(fresh.message_id).deleted_at is not None
    assert stored.message(old.message_id).deleted_at is None


async def test_delete_messages_skips_what_it_cannot_delete(
    bot: Bot, control: SandboxClient, scene: Scene
) -> None:
    old = await bot.send_message(scene.user_id, "old")
    await control.advance_clock(47 * 3600)
    recent = await bot.send_message(scene.user_id, "recent")
    await control.advance_clock(2 * 3600)  # old is now 49h old, recent 2h
    assert await bot.delete_messages(scene.user_id, [old.message_id, recent.message_id, 9999])
    chat = await control.get_chat(scene.user_id)
    assert chat.message(old.message_id).deleted_at is None
    assert chat.message(recent.message_id).deleted_at is not None
    with pytest.raises(TelegramBadRequest, match="too many message identifiers"):
        await bot.delete_messages(scene.user_id, list(range(1, 102)))


async def test_bot_needs_delete_right_for_other_peoples_group_messages(
    bot: Bot, control: SandboxClient, scene: Scene
) -> None:
    posted = await control.send_message(scene.user_id, scene.group_id, "/note hi")
    await control.set_bot_membership(
        scene.group_id, by_id=scene.user_id, status="administrator", rights={}
    )
    with pytest.raises(TelegramBadRequest, match="message can't be deleted"):
        await bot.delete_message(scene.group_id, posted)
    await control.set_bot_membership(
        scene.group_id,
        by_id=scene.user_id,
        status="administrator",
        rights={"can_delete_messages": True},
    )
    assert await bot.delete_message(scene.group_id, posted)


async def test_broken_inline_keyboards_are_rejected(
    http: aiohttp.ClientSession, base_url: str, scene: Scene
) -> None:
    too_long = {"inline_keyboard": [[{"text": "x", "callback_data": "d" * 65}]]}
    status, body = await raw_call(
        http,
        base_url,
        "sendMessage",
        json={"chat_id": scene.user_id, "text": "t", "reply_markup": too_long},
    )
    assert (status, body["description"]) == (400, "Bad Request: BUTTON_DATA_INVALID")
    no_action = {"inline_keyboard": [[{"text": "x"}]]}
    status, body = await raw_call(
        http,
        base_url,
        "sendMessage",
        json={"chat_id": scene.user_id, "text": "t", "reply_markup": no_action},
    )
    assert status == 400
    assert "Text buttons are unallowed in the inline keyboard" in body["description"]
