"""Callback queries: pressed via the control API, answered once within their lifetime."""

from __future__ import annotations

import asyncio

import pytest
from aiogram import Bot, Dispatcher
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup

from sandbox.client import SandboxClient, SandboxControlError
from tests.sandbox.conftest import Scene

KEYBOARD = InlineKeyboardMarkup(
    inline_keyboard=[[InlineKeyboardButton(text="Mute", callback_data="mute:auth")]]
)


async def test_pressed_button_reaches_a_handler_that_answers(
    bot: Bot, control: SandboxClient, scene: Scene
) -> None:
    sent = await bot.send_message(scene.user_id, "Settings", reply_markup=KEYBOARD)
    dp = Dispatcher()
    answered = asyncio.Event()

    @dp.callback_query()
    async def on_press(query: CallbackQuery) -> None:
        assert query.data == "mute:auth"
        await query.answer("Muted")
        answered.set()

    task = asyncio.create_task(
        dp.start_polling(bot, handle_signals=False, close_bot_session=False, polling_timeout=5)
    )
    try:
        query_id = await control.press_button(
            scene.user_id, scene.user_id, sent.message_id, "mute:auth"
        )
        chat = await control.wait_for_chat(
            scene.user_id, lambda c: any(q.answered for q in c.callback_queries)
        )
    finally:
        await dp.stop_polling()
        async with asyncio.timeout(2):
            await task
    (query,) = chat.callback_queries
    assert query.id == query_id
    assert query.answer is not None
    assert query.answer["text"] == "Muted"
    assert answered.is_set()


async def test_a_query_is_answered_once_and_expires(
    bot: Bot, control: SandboxClient, scene: Scene
) -> None:
    sent = await bot.send_message(scene.user_id, "Settings", reply_markup=KEYBOARD)
    first = await control.press_button(scene.user_id, scene.user_id, sent.message_id, "mute:auth")
    updates = await bot.get_updates()
    pressed = [u.callback_query for u in updates if u.callback_query]
    assert [q.id for q in pressed] == [first]
    assert pressed[0].message is not None
    assert pressed[0].message.message_id == sent.message_id
    assert await bot.answer_callback_query(first)
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query(first)
    late = await control.press_button(scene.user_id, scene.user_id, sent.message_id, "mute:auth")
    await control.advance_clock(60)
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query(late)
    with pytest.raises(TelegramBadRequest, match="query ID is invalid"):
        await bot.answer_callback_query("12345")


async def test_only_bot_messages_with_that_button_can_be_pressed(
    bot: Bot, control: SandboxClient, scene: Scene
) -> None:
    own = await control.send_message(scene.user_id, scene.user_id, "my own text")
    with pytest.raises(SandboxControlError, match="not sent by the bot"):
        await control.press_button(scene.user_id, scene.user_id, own, "mute:auth")
    sent = await bot.send_message(scene.user_id, "Settings", reply_markup=KEYBOARD)
    with pytest.raises(SandboxControlError, match="no button"):
        await control.press_button(scene.user_id, scene.user_id, sent.message_id, "other")
    with pytest.raises(SandboxControlError) as missing:
        await control.press_button(scene.user_id, scene.user_id, 999, "mute:auth")
    assert missing.value.status == 404
