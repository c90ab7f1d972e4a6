"""Outer middlewares: per-chat ordering, one DB session per update (`session`), its `user`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import Chat, TelegramObject
from aiogram.types import User as TelegramUser
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.repositories import users


class DbSessionMiddleware(BaseMiddleware):
    """Opens a session for the update and commits it if the handler succeeds.

    Repositories never commit; the update is the unit of work, so a handler that fails halfway
    leaves nothing half-written. A handler may commit early, before it tells the person that
    something is done: what a reply announces must already be durable (a script can use a new
    token the instant it is shown).
    """

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        async with self._sessionmaker() as session:  # closing rolls back what was not committed
            data["session"] = session
            result = await handler(event, data)
            await session.commit()
            return result


class CurrentUserMiddleware(BaseMiddleware):
    """Hands handlers the registered person behind the update as `user` (None if unregistered).

    Must run inside DbSessionMiddleware (it uses its session) and after aiogram's own
    UserContextMiddleware, which sets `event_from_user`.
    """

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        from_user: TelegramUser | None = data.get("event_from_user")
        session: AsyncSession = data["session"]
        data["user"] = (
            None if from_user is None else await users.by_telegram_id(session, from_user.id)
        )
        return await handler(event, data)


class ChatLockMiddleware(BaseMiddleware):
    """Handles one update per chat at a time, commit included (register it before the DB one).

    aiogram handles updates as concurrent tasks; without this, "bot added" followed at once by
    "bot promoted" (or two quick /setup) could both see no group yet and create every topic
    twice. Updates of different chats still run concurrently. Polling is one process, so a
    process-local lock is enough.
    """

    def __init__(self) -> None:
        self._locks: dict[int, asyncio.Lock] = {}
        self._holders: dict[int, int] = {}  # updates using each lock, to drop idle ones

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        chat: Chat | None = data.get("event_chat")
        if chat is None:
            return await handler(event, data)
        lock = self._locks.setdefault(chat.id, asyncio.Lock())
        self._holders[chat.id] = self._holders.get(chat.id, 0) + 1
        try:
            async with lock:
                return await handler(event, data)
        finally:
            self._holders[chat.id] -= 1
            if not self._holders[chat.id]:
                del self._holders[chat.id], self._locks[chat.id]
