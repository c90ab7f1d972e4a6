"""The "Read, delete" button of ephemeral messages: the log's owner presses it, the message
(every part of it) and its record go. Anyone else, or a message already gone, gets an alert."""

from __future__ import annotations

import logging

from aiogram import Bot, Router
from aiogram.types import CallbackQuery, Message
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.ephemeral import ReadDelete
from gateway.telegram_deletion import delete_messages
from storage.models import User
from storage.repositories import copies, groups, retention
from storage.types import utcnow

log = logging.getLogger(__name__)

GONE = (
    "I have no record of this message (yet): if it just arrived, try again in a moment; "
    "otherwise it was deleted already or is too old to delete."
)
NOT_OWNER = "Only the owner of this personal log can delete its messages."
LATER = "Telegram did not let me delete it just now; I will keep trying."
DONE = "Deleted."


async def read_delete(
    query: CallbackQuery, session: AsyncSession, bot: Bot, user: User | None
) -> None:
    pressed = query.message
    if not isinstance(pressed, Message):  # too old for Telegram to tell us which one it was
        await query.answer(GONE, show_alert=True)
        return
    chat_id = pressed.chat.id
    group = await groups.by_chat_id(session, chat_id)
    if group is None or user is None or group.owner_id != user.id:
        await query.answer(NOT_OWNER, show_alert=True)
        return
    parts = await copies.with_siblings(session, chat_id, pressed.message_id)
    if not parts:
        await query.answer(GONE, show_alert=True)
        return
    result = await delete_messages(bot, chat_id, [p.telegram_message_id for p in parts])
    done = set(result.done)
    await copies.drop(session, [p.id for p in parts if p.telegram_message_id in done])
    # Anything Telegram refused now is left to the scheduled deleter, due at once.
    failed = [p.id for p in parts if p.telegram_message_id not in done]
    await copies.schedule(session, failed, utcnow())
    if not failed:
        # Read and gone: the gateway's record of it goes too.
        await retention.drop(session, sorted({p.message_id for p in parts if p.message_id}))
    await session.commit()
    log.info("ephemeral message in chat %s deleted by its owner (%d part(s))", chat_id, len(done))
    await query.answer(LATER if failed else DONE, show_alert=bool(failed))


def create_router() -> Router:
    router = Router(name="ephemeral")
    router.callback_query.register(read_delete, ReadDelete.filter())
    return router
