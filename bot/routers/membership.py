"""The bot added to, promoted in or removed from a group (my_chat_member updates)."""

from __future__ import annotations

import logging

from aiogram import Bot, F, Router
from aiogram.enums import ChatType
from aiogram.exceptions import TelegramAPIError, TelegramForbiddenError
from aiogram.filters import IS_MEMBER, IS_NOT_MEMBER, ChatMemberUpdatedFilter
from aiogram.types import ChatMemberUpdated
from sqlalchemy.ext.asyncio import AsyncSession

from bot import texts
from bot.linking import Reply, post, reply_for
from gateway.personal_log import link_group, unlink_chat
from storage.models import User
from storage.repositories import groups

log = logging.getLogger(__name__)


async def bot_added_or_changed(
    event: ChatMemberUpdated, session: AsyncSession, bot: Bot, user: User | None
) -> None:
    """Added, promoted or demoted: run setup at once (silent when nothing changed)."""
    chat_id = event.chat.id
    owner = user
    existing = await groups.by_chat_id(session, chat_id)
    if existing is not None and existing.unlinked_at is None:
        # Any admin may change the bot's rights; a linked log is re-checked for its own owner.
        owner = await session.get(User, existing.owner_id)
    if owner is None:
        me = await bot.me()
        await post(bot, chat_id, Reply(texts.start_in_private_first(me.username)))
        return
    result = await link_group(session, bot, owner, chat_id)
    await session.commit()  # linked before the welcome says so
    reply = await reply_for(bot, result, chat_id, owner.telegram_id, quiet=True)
    if reply is not None:
        await post(bot, chat_id, reply)


async def bot_removed(event: ChatMemberUpdated, session: AsyncSession, bot: Bot) -> None:
    group = await unlink_chat(session, event.chat.id)
    if group is None:
        return
    owner = await session.get(User, group.owner_id)
    if owner is None:  # pragma: no cover - the foreign key makes this impossible
        return
    try:
        await bot.send_message(owner.telegram_id, texts.unlinked(event.chat.title, event.chat.id))
    except TelegramForbiddenError:
        pass  # the person blocked the bot: the unlink stands, there is just no one to tell
    except TelegramAPIError as error:
        # Never let a failed notice roll back the unlink.
        log.warning("could not tell user %s about the unlink: %s", owner.id, type(error).__name__)


def create_router() -> Router:
    """A fresh Router: one instance can be attached to one Dispatcher only."""
    router = Router(name="membership")
    router.my_chat_member.filter(F.chat.type.in_({ChatType.GROUP, ChatType.SUPERGROUP}))
    router.my_chat_member.register(bot_added_or_changed, ChatMemberUpdatedFilter(IS_MEMBER))
    router.my_chat_member.register(bot_removed, ChatMemberUpdatedFilter(IS_NOT_MEMBER))
    return router
