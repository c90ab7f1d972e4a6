"""Keeping aiogram's parametrised `Response[T]` models alive for the life of the bot.

aiogram reads every Bot API answer with `Response[method.__returning__]` (built anew by
subscripting on each call). pydantic caches parametrised generic models only weakly, and such a
model sits in reference cycles, so a garbage collection can drop it and the next call builds it
again, schema and validator included: under load that was about half the CPU of a sendMessage
call (measured with py-spy on bench/pipeline.py). This request middleware holds each return
type's model the first time it is used, so subscripting finds it in pydantic's cache.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.methods import Response
from aiogram.methods.base import TelegramType

if TYPE_CHECKING:
    from aiogram import Bot
    from aiogram.methods import TelegramMethod


class KeepResponseModels(BaseRequestMiddleware):
    def __init__(self) -> None:
        self.kept: dict[Any, type[Response[Any]]] = {}

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        returning = method.__returning__
        if returning not in self.kept:
            self.kept[returning] = Response[returning]  # type: ignore[valid-type]
        return await make_request(bot, method)
