"""/setup in a group links it as the sender's personal log; the move confirmation button."""

from __future__ import annotations

import logging

from aiogram import Bot, F, Router
from aiogram.enums import ChatType
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot import texts
from bot.callbacks import MoveLog
from bot.linking import Reply, post, reply_for
from gateway.personal_log import link_group
from storage.models import User
from storage.repositories import groups

log = logging.getLogger(__name__)

IN_GROUP = F.chat.type.in_({ChatType.GROUP, ChatType.SUPERGROUP})


async def setup(message: Message, session: AsyncSession, bot: Bot, user: User | None) -> None:
    chat_id = message.chat.id
    thread_id = message.message_thread_id if message.is_topic_message else None
    if user is None:
        me = await bot.me()
        await post(bot, chat_id, Reply(texts.start_in_private_first(me.username)), thread_id)
        return
    result = await link_group(session, bot, user, chat_id)
    await session.commit()  # linked before the welcome says so
    reply = await reply_for(bot, result, chat_id, user.telegram_id, quiet=False)
    if reply is not None:
        await post(bot, chat_id, reply, thread_id)


async def setup_in_private(message: Message) -> None:
    await message.answer(texts.SETUP_IN_GROUP)


async def confirm_move(
    query: CallbackQuery,
    callback_data: MoveLog,
    session: AsyncSession,
    bot: Bot,
    user: User | None,
) -> None:
    # The button sits in a group where anyone can press it: only the person who asked may.
    if user is None or query.from_user.id != callback_data.owner_id:
        await query.answer(texts.NOT_YOUR_BUTTON, show_alert=True)
        return
    current = await groups.linked_group_of(session, user.id)
    if current is not None and current.chat_id == callback_data.chat_id:
        await query.answer(texts.ALREADY_MOVED, show_alert=True)
        return
    result = await link_group(session, bot, user, callback_data.chat_id, replace_existing=True)
    await session.commit()  # linked before the welcome says so
    if not result.linked:
        await query.answer(texts.move_refused(result.problems), show_alert=True)
        return
    await query.answer()
    if isinstance(query.message, Message):
        try:
            await query.message.edit_text(texts.MOVED)  # drops the button: no second press
        except TelegramAPIError as error:
            log.warning("could not edit the move confirmation: %s", type(error).__name__)
    reply = await reply_for(bot, result, callback_data.chat_id, user.telegram_id, quiet=True)
    if reply is not None:
        await post(bot, callback_data.chat_id, reply)


def create_router() -> Router:
    """A fresh Router: one instance can be attached to one Dispatcher only."""
    router = Router(name="setup")
    router.message.register(setup, Command("setup"), IN_GROUP, F.from_user)
    router.message.register(setup_in_private, Command("setup"), F.chat.type == ChatType.PRIVATE)
    router.callback_query.register(confirm_move, MoveLog.filter())
    return router
