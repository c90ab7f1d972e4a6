"""aiogram against the sandbox: getMe, long polling into a Dispatcher, replies in topics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiogram import Bot, Dispatcher
from aiogram.exceptions import TelegramConflictError
from aiogram.filters import Command
from aiogram.types import Message
from aiohttp.test_utils import TestServer

from sandbox.client import SandboxClient
from sandbox.server import sandbox_state
from sandbox.state import DEFAULT_BOT_TOKEN
from tests.sandbox.conftest import Scene, raw_call


@asynccontextmanager
async def polling(dp: Dispatcher, bot: Bot) -> AsyncIterator[None]:
    task = asyncio.create_task(
        dp.start_polling(bot, handle_signals=False, close_bot_session=False, polling_timeout=5)
    )
    try:
        yield
    finally:
        await dp.stop_polling()
        async with asyncio.timeout(2):
            await task


async def test_get_me(bot: Bot) -> None:
    me = await bot.get_me()
    assert me.id == int(DEFAULT_BOT_TOKEN.split(":")[0])
    assert me.is_bot
    assert me.username == "libral_sandbox_bot"
    assert me.first_name == "Libral Sandbox Bot"
    assert me.can_join_groups


async def test_dispatcher_receives_message_and_replies(
    bot: Bot, control: SandboxClient, scene: Scene
) -> None:
    dp = Dispatcher()

    @dp.message(Command("ping"))
    async def ping(message: Message) -> None:
        await message.answer("pong")

    async with polling(dp, bot):
        await control.send_message(scene.user_id, scene.user_id, "/ping")
        reply = await control.wait_for_bot_message(scene.user_id, lambda m: m.text == "pong")
    assert reply.message_thread_id is None


async def test_reply_lands_in_the_same_topic(
    bot: Bot, control: SandboxClient, scene: Scene
) -> None:
    topic = await bot.create_forum_topic(scene.group_id, "Payments")
    dp = Dispatcher()

    @dp.message(Command("status"))
    async def status(message: Message) -> None:
        assert message.is_topic_message
        await message.answer("all good")

    async with polling(dp, bot):
        await control.send_message(
            scene.user_id, scene.group_id, "/status", message_thread_id=topic.message_thread_id
        )
        reply = await control.wait_for_bot_message(scene.group_id, lambda m: m.text == "all good")
    assert reply.message_thread_id == topic.message_thread_id
    assert reply.is_topic_message


async def test_get_updates_offset_confirms_and_timeout_waits(
    bot: Bot, control: SandboxClient, scene: Scene, server: TestServer
) -> None:
    first = await bot.get_updates(timeout=0)
    assert [u.message.text for u in first if u.message and u.message.text] == ["/start"]
    queue = sandbox_state(server.app).updates
    parked = queue.parked.version
    waiting = asyncio.create_task(bot.get_updates(offset=first[-1].update_id + 1, timeout=5))
    assert await queue.parked.wait_beyond(parked, seconds=2)  # the long poll is waiting now
    assert not waiting.done()
    await control.send_message(scene.user_id, scene.user_id, "later")
    async with asyncio.timeout(2):
        later = await waiting
    assert [u.message.text for u in later if u.message] == ["later"]
    assert later[0].update_id > first[-1].update_id
    # confirming with offset drops everything before it
    assert await bot.get_updates(offset=later[-1].update_id + 1, timeout=0) == []


async def test_get_updates_limit_and_allowed_updates(
    bot: Bot, control: SandboxClient, scene: Scene
) -> None:
    await control.send_message(scene.user_id, scene.user_id, "one")
    await control.send_message(scene.user_id, scene.user_id, "two")
    limited = await bot.get_updates(limit=1, allowed_updates=["message"])
    assert len(limited) == 1
    # my_chat_member updates are no longer generated: only messages are allowed now
    other = await control.create_group("Other", owner_id=scene.user_id)
    await control.set_bot_membership(other, by_id=scene.user_id, status="member")
    updates = await bot.get_updates(offset=limited[0].update_id + 1)
    assert {u.event_type for u in updates} == {"message"}


async def test_get_updates_conflicts_with_webhook(bot: Bot) -> None:
    assert await bot.set_webhook("https://example.org/hook", secret_token="s3cret")
    info = await bot.get_webhook_info()
    assert info.url == "https://example.org/hook"
    with pytest.raises(TelegramConflictError, match="webhook is active"):
        await bot.get_updates()
    assert await bot.delete_webhook(drop_pending_updates=True)
    assert (await bot.get_webhook_info()).url == ""
    assert await bot.get_updates() == []


async def test_get_updates_timeout_returns_empty_when_nothing_happens(bot: Bot) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await bot.get_updates(timeout=1) == []
    assert loop.time() - started >= 0.9


async def test_a_second_long_poll_terminates_the_first(
    http: aiohttp.ClientSession, base_url: str, server: TestServer
) -> None:
    queue = sandbox_state(server.app).updates
    parked = queue.parked.version
    first = asyncio.create_task(raw_call(http, base_url, "getUpdates", json={"timeout": 5}))
    assert await queue.parked.wait_beyond(parked, seconds=2)
    second = asyncio.create_task(raw_call(http, base_url, "getUpdates", json={"timeout": 0}))
    async with asyncio.timeout(2):
        status, body = await first
        assert (await second)[0] == 200
    assert status == 409
    assert "terminated by other getUpdates request" in body["description"]
