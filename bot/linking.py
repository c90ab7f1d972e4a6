"""Turns a gateway.personal_log LinkResult into what the bot posts in the group.

Shared by /setup (bot.routers.setup) and the bot being added or promoted
(bot.routers.membership), so both flows say exactly the same things.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import InlineKeyboardMarkup

from bot import keyboards, texts
from gateway.personal_log import LinkOutcome, LinkResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reply:
    text: str
    markup: InlineKeyboardMarkup | None = None
    # Welcomes go to the General topic, whichever topic /setup was sent from.
    in_general: bool = False


async def reply_for(
    bot: Bot, result: LinkResult, chat_id: int, owner_telegram_id: int, *, quiet: bool
) -> Reply | None:
    """What to post about `result`; None when there is nothing to say (`quiet` and unchanged)."""
    match result.outcome:
        case LinkOutcome.NEEDS_CHANGES:
            return Reply(texts.needs_changes(result.problems))
        case LinkOutcome.NEEDS_CONFIRMATION:
            assert result.previous_chat_id is not None
            title = await chat_title(bot, result.previous_chat_id)
            return Reply(
                texts.confirm_move(title, result.previous_chat_id),
                keyboards.confirm_move(chat_id, owner_telegram_id),
            )
        case LinkOutcome.LINKED | LinkOutcome.RELINKED | LinkOutcome.MOVED:
            assert result.group is not None
            text = texts.welcome(result.group.topics)
            if result.failed:
                text += "\n\n" + texts.some_topics_failed(result.failed)
            return Reply(text, in_general=True)
        case LinkOutcome.UNCHANGED:
            if result.failed:
                return Reply(texts.some_topics_failed(result.failed))
            if result.created:
                return Reply(texts.created_missing(result.created))
            return None if quiet else Reply(texts.ALREADY_LINKED)
    return None  # pragma: no cover - the match is exhaustive


async def chat_title(bot: Bot, chat_id: int) -> str | None:
    """The chat's title if the bot can still see it (it may have been removed)."""
    try:
        return (await bot.get_chat(chat_id)).title
    except TelegramAPIError:
        return None


async def post(bot: Bot, chat_id: int, reply: Reply, thread_id: int | None = None) -> None:
    """Send `reply`; a failure is logged, not raised, so the setup already done is kept."""
    try:
        await bot.send_message(
            chat_id,
            reply.text,
            message_thread_id=None if reply.in_general else thread_id,
            reply_markup=reply.markup,
        )
    except TelegramAPIError as error:
        log.warning("could not post in chat %s: %s", chat_id, type(error).__name__)
