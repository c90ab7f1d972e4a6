"""A running bot: sandbox Bot API server, migrated SQLite, the real Bot and Dispatcher, polling.

Tests act as Telegram users through SandboxClient and wait on conditions (sandbox changes, or
`RunningBot.settled()` before reading the database), never on bare sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiogram import Bot, Dispatcher
from aiogram.types import Update
from aiohttp.test_utils import TestServer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.dispatcher import build_dispatcher
from gateway.runtime import build_bot
from sandbox.client import ChatView, MessageView, SandboxClient, SandboxControlError
from sandbox.notify import ChangeSignal
from sandbox.server import create_sandbox_app, sandbox_state
from sandbox.state import DEFAULT_BOT_TOKEN

ServerFactory = Callable[..., Awaitable[TestServer]]

PUBLIC_API_URL = "https://gateway.example.org"
TOPIC_RIGHTS: dict[str, bool] = {"can_manage_topics": True}
WELCOME = "now your personal log"  # in the welcome posted in General once setup is done


@dataclass
class RunningBot:
    bot: Bot
    dp: Dispatcher
    control: SandboxClient
    sessionmaker: async_sessionmaker[AsyncSession]
    server: TestServer
    inflight: int = 0
    handled: ChangeSignal = field(default_factory=ChangeSignal)
    # Exceptions raised while handling updates (aiogram only logs them); checked at teardown.
    errors: list[BaseException] = field(default_factory=list)

    async def settled(self, within: float = 5.0) -> None:
        """Every update the sandbox emitted so far has been handled and its session committed.

        The database is written at the end of an update (the middleware commits after the
        handler), so a reply being visible does not yet mean its rows are.
        """
        queue = sandbox_state(self.server.app).updates
        async with asyncio.timeout(within):
            while queue.pending_count or self.inflight:
                parked, handled = queue.parked.version, self.handled.version
                waiters = {
                    asyncio.create_task(queue.parked.wait_beyond(parked, within)),
                    asyncio.create_task(self.handled.wait_beyond(handled, within)),
                }
                _, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                for task in pending:
                    task.cancel()

    async def register(self, first_name: str, *, language_code: str | None = None) -> int:
        """A new Telegram user who sent /start and got the answer; returns its id."""
        user_id = await self.control.create_user(first_name, language_code=language_code)
        await self.control.send_message(user_id, user_id, "/start")
        await self.control.wait_for_bot_message(user_id)
        await self.settled()
        return user_id

    async def forum_log(self, owner_id: int, title: str = "My log") -> int:
        """A forum group where `owner_id` added the bot with the topics right; waits for setup."""
        group_id = await self.control.create_group(title, owner_id=owner_id, is_forum=True)
        await self.control.set_bot_membership(
            group_id, by_id=owner_id, status="administrator", rights=TOPIC_RIGHTS
        )
        await self.control.wait_for_bot_message(group_id, lambda m: has_text(m, WELCOME))
        await self.settled()
        return group_id

    async def reply_after(
        self, user_id: int, chat_id: int, text: str, predicate: Callable[[MessageView], bool]
    ) -> MessageView:
        """`user_id` writes `text` in `chat_id`; the first new bot message matching `predicate`."""
        try:
            before = {m.message_id for m in (await self.control.get_chat(chat_id)).messages}
        except SandboxControlError:  # a private chat exists only once the user wrote
            before = set()
        await self.control.send_message(user_id, chat_id, text)
        reply = await self.control.wait_for_bot_message(
            chat_id, lambda m: m.message_id not in before and predicate(m)
        )
        await self.settled()
        return reply

    async def press(
        self, user_id: int, chat_id: int, message: MessageView, data: str
    ) -> dict[str, Any]:
        """Press a button; returns the bot's answerCallbackQuery parameters once it answered."""
        query_id = await self.control.press_button(user_id, chat_id, message.message_id, data)

        def answered(chat: ChatView) -> bool:
            return any(q.id == query_id and q.answered for q in chat.callback_queries)

        chat = await self.control.wait_for_chat(chat_id, answered)
        await self.settled()
        answer = next(q.answer for q in chat.callback_queries if q.id == query_id)
        assert answer is not None
        return answer


def has_text(message: MessageView, fragment: str) -> bool:
    return message.text is not None and fragment in message.text


def entity_texts(message: MessageView, kind: str) -> list[str]:
    """The text of each entity of type `kind` (offsets are in UTF-16 code units)."""
    return message.entity_texts(kind)


def buttons(message: MessageView) -> list[tuple[str, str]]:
    """(text, callback_data) of every inline button, row by row."""
    rows = (message.reply_markup or {}).get("inline_keyboard", [])
    return [(b["text"], b["callback_data"]) for row in rows for b in row]


@pytest.fixture
async def running(
    aiohttp_server: ServerFactory, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[RunningBot]:
    server = await aiohttp_server(create_sandbox_app())
    base_url = str(server.make_url("")).rstrip("/")
    bot = build_bot(DEFAULT_BOT_TOKEN, base_url)
    dp = build_dispatcher(sessionmaker, public_api_url=PUBLIC_API_URL)
    started = asyncio.Event()

    async def mark_started() -> None:  # runs after register_commands (registered earlier)
        started.set()

    dp.startup.register(mark_started)
    async with aiohttp.ClientSession() as http:
        running = RunningBot(bot, dp, SandboxClient(base_url, http), sessionmaker, server)
        feed_update = dp.feed_update

        async def tracked_feed_update(bot: Bot, update: Update, **kwargs: Any) -> Any:
            running.inflight += 1
            try:
                return await feed_update(bot, update, **kwargs)
            except Exception as error:
                running.errors.append(error)
                raise
            finally:
                running.inflight -= 1
                running.handled.bump()

        dp.feed_update = tracked_feed_update  # type: ignore[method-assign]
        polling = asyncio.create_task(
            dp.start_polling(bot, handle_signals=False, close_bot_session=False, polling_timeout=5)
        )
        try:
            async with asyncio.timeout(5):
                await started.wait()
            yield running
        finally:
            with contextlib.suppress(RuntimeError):  # polling may have failed to start
                await dp.stop_polling()
            async with asyncio.timeout(5):
                await asyncio.gather(polling, return_exceptions=True)
            await bot.session.close()
        assert running.errors == [], "a handler raised while handling an update"
