"""Pacing the bot's own messages (command replies, the welcome in a new personal log, /export's
document) with the delivery worker's buckets.

They count toward the same Telegram limits as the worker's deliveries; unpaced, a reply into a
group that a burst has just used up would trip a 429 and be lost. As an aiogram request
middleware on the bot, every sendMessage, sendDocument or edit (the /prefs keyboards) in a chat
waits for its slot from the worker's pacer (`SendPacing`), at most `MAX_WAIT` seconds (then it
goes anyway: a late answer beats none), and a 429 it still gets slows that chat's buckets like
the worker's own. The worker's sends are paced where they are made and pass straight through
(the Telegram channel marks them with `PACED_BY_CALLER`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods import EditMessageReplyMarkup, EditMessageText, SendDocument, SendMessage
from aiogram.methods.base import TelegramType

from gateway.channels.telegram import PACED_BY_CALLER
from gateway.delivery.attempt import SendPacing

if TYPE_CHECKING:
    from aiogram import Bot
    from aiogram.methods import Response, TelegramMethod

log = logging.getLogger(__name__)

MAX_WAIT = 30.0  # seconds a reply waits for its slot at most
# Telegram counts an edit against the same limits as a new message (so does the sandbox).
_POSTING = (SendMessage, SendDocument, EditMessageText, EditMessageReplyMarkup)


class PacedBotRequests(BaseRequestMiddleware):
    def __init__(
        self,
        pacing: SendPacing,
        clock: Callable[[], datetime],
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_wait: float = MAX_WAIT,
    ) -> None:
        self._pacing = pacing
        self._clock = clock
        self._sleep = sleep
        self._max_wait = timedelta(seconds=max_wait)

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        chat_id = getattr(method, "chat_id", None)
        posting = type(method) in _POSTING  # (not isinstance: keeps `method` its own type)
        if not posting or not isinstance(chat_id, int) or PACED_BY_CALLER.get():
            return await make_request(bot, method)
        await self._wait_turn(chat_id)
        try:
            return await make_request(bot, method)
        except TelegramRetryAfter as exc:
            self._pacing.rate_limited(chat_id, exc.retry_after)
            raise

    async def _wait_turn(self, chat_id: int) -> None:
        give_up_at = self._clock() + self._max_wait
        while (hold := await self._pacing.before_send(chat_id)) is not None:
            now = self._clock()
            if now >= give_up_at:
                log.warning("bot message to chat %s sent without a pacing slot", chat_id)
                return
            await self._sleep((min(hold, give_up_at) - now).total_seconds())
