"""Deleting the bot's messages in a chat: deleteMessages in batches of up to 100, and sorting
what happened into done (deleted, or already gone), failed (try again later) and rate limited.

deleteMessages skips messages it cannot find; when Telegram refuses a batch as a whole, each
message of it is tried alone with deleteMessage to learn which are gone and which are stuck.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest

from gateway.channels.base import ChannelError, RateLimited, Transient
from gateway.channels.telegram import translate
from gateway.ephemeral import DELETE_WINDOW

log = logging.getLogger(__name__)

MAX_BATCH = 100  # deleteMessages accepts 1-100 identifiers
DELETE_WINDOW_SECONDS = int(DELETE_WINDOW.total_seconds())  # Telegram's limit for bots
GONE = ("message to delete not found", "message_id_invalid")


@dataclass
class DeletionResult:
    done: list[int] = field(default_factory=list)  # deleted now, or already gone
    failed: dict[int, ChannelError] = field(default_factory=dict)
    retry_after: float | None = None  # flood control: nothing more for this chat until then

    def merge(self, other: DeletionResult) -> None:
        self.done.extend(other.done)
        self.failed.update(other.failed)
        if other.retry_after is not None:
            self.retry_after = max(self.retry_after or 0, other.retry_after)


def _is_gone(exc: TelegramAPIError) -> bool:
    return isinstance(exc, TelegramBadRequest) and any(g in exc.message.lower() for g in GONE)


async def _one_by_one(bot: Bot, chat_id: int, ids: Sequence[int]) -> DeletionResult:
    result = DeletionResult()
    for index, message_id in enumerate(ids):
        try:
            await bot.delete_message(chat_id, message_id)
        except TelegramAPIError as exc:
            if _is_gone(exc):
                result.done.append(message_id)
                continue
            error = translate(exc)
            result.failed[message_id] = error
            if isinstance(error, RateLimited):
                result.retry_after = error.retry_after
                for rest in ids[index + 1 :]:
                    result.failed[rest] = error
                break
        else:
            result.done.append(message_id)
    return result


async def delete_messages(bot: Bot, chat_id: int, ids: Sequence[int]) -> DeletionResult:
    """Delete `ids` in `chat_id`; never raises for Telegram's answers, only sorts them."""
    result = DeletionResult()
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), MAX_BATCH):
        batch = unique[start : start + MAX_BATCH]
        if result.retry_after is not None:
            waiting = RateLimited("TelegramRetryAfter", "flood control", result.retry_after)
            result.failed.update(dict.fromkeys(batch, waiting))
            continue
        try:
            await bot.delete_messages(chat_id, batch)
        except TelegramBadRequest:
            result.merge(await _one_by_one(bot, chat_id, batch))
        except TelegramAPIError as exc:
            error = translate(exc)
            result.failed.update(dict.fromkeys(batch, error))
            if isinstance(error, RateLimited):
                result.retry_after = error.retry_after
        except TimeoutError:
            timeout = Transient("TimeoutError", "request timed out")
            result.failed.update(dict.fromkeys(batch, timeout))
        else:
            result.done.extend(batch)
    if result.failed:
        first = next(iter(result.failed.values()))
        log.warning(
            "chat %s: %d message(s) not deleted (%s)",
            chat_id,
            len(result.failed),
            first.error_class,
        )
    return result
