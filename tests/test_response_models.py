"""The bot keeps aiogram's `Response[T]` models alive, so a garbage collection cannot make the
next Bot API call rebuild one (gateway.response_models)."""

from __future__ import annotations

import gc
from collections.abc import Awaitable, Callable

import aiohttp
from aiogram.methods import Response
from aiogram.types import Message, User
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.response_models import KeepResponseModels
from gateway.runtime import build_bot
from sandbox.client import SandboxClient
from sandbox.server import create_sandbox_app
from sandbox.state import DEFAULT_BOT_TOKEN

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]


async def test_each_return_type_model_is_kept_from_its_first_call(
    aiohttp_server: ServerFactory,
) -> None:
    server = await aiohttp_server(create_sandbox_app())
    url = str(server.make_url("")).rstrip("/")
    async with aiohttp.ClientSession() as http:
        control = SandboxClient(url, http)
        user = await control.create_user("Ada")
        await control.send_message(user, user, "/start")
        bot = build_bot(DEFAULT_BOT_TOKEN, url)
        try:
            [keeper] = [m for m in bot.session.middleware if isinstance(m, KeepResponseModels)]
            assert keeper.kept == {}
            sent = await bot.send_message(user, "hello")
            me = await bot.get_me()
            await bot.send_message(user, "again")
        finally:
            await bot.session.close()
    assert sent.text == "hello"
    assert me.is_bot
    assert set(keeper.kept) == {Message, User}  # one model per return type, not per call
    gc.collect()
    # What aiogram subscripts on its next call is the kept model, not a new one.
    assert Response[Message] is keeper.kept[Message]
    assert Response[User] is keeper.kept[User]
