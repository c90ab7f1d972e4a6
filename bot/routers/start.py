"""/start registers the person (Telegram id and language only, no names); /help lists commands."""

from __future__ import annotations

import logging

from aiogram import F, Router
from aiogram.enums import ChatType
from aiogram.filters import Command, CommandStart
from aiogram.types import Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot import texts
from bot.commands import GROUP_COMMANDS, PRIVATE_COMMANDS
from storage.repositories import groups, users

log = logging.getLogger(__name__)


async def start(message: Message, session: AsyncSession) -> None:
    assert message.from_user is not None  # guaranteed by the F.from_user filter
    user, created = await users.get_or_create(
        session, message.from_user.id, message.from_user.language_code
    )
    if created:
        log.info("registered user %s", user.id)
    linked = await groups.linked_group_of(session, user.id)
    await session.commit()  # registered before the reply invites the next step
    await message.answer(texts.START_LINKED if linked else texts.START)


async def help_(message: Message) -> None:
    await message.answer(texts.help_text(PRIVATE_COMMANDS, GROUP_COMMANDS))


def create_router() -> Router:
    """A fresh Router: one instance can be attached to one Dispatcher only."""
    router = Router(name="start")
    router.message.register(start, CommandStart(), F.chat.type == ChatType.PRIVATE, F.from_user)
    router.message.register(help_, Command("help"))
    return router
