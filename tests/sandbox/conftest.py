"""Fixtures: a real sandbox server on a free localhost port, a control client and an aiogram Bot."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiohttp.test_utils import TestServer

from sandbox.client import SandboxClient
from sandbox.server import create_sandbox_app
from sandbox.state import DEFAULT_BOT_TOKEN

ServerFactory = Callable[..., Awaitable[TestServer]]


class FakeClock:
    """A monotonic clock that only moves when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def server(aiohttp_server: ServerFactory, fake_clock: FakeClock) -> TestServer:
    return await aiohttp_server(create_sandbox_app(clock=fake_clock))


@pytest.fixture
def base_url(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def control(base_url: str, http: aiohttp.ClientSession) -> SandboxClient:
    return SandboxClient(base_url, http)


def make_bot(base_url: str, token: str = DEFAULT_BOT_TOKEN) -> Bot:
    return Bot(token, session=AiohttpSession(api=TelegramAPIServer.from_base(base_url)))


@pytest.fixture
async def bot(base_url: str) -> AsyncIterator[Bot]:
    bot = make_bot(base_url)
    yield bot
    await bot.session.close()


@dataclass
class Scene:
    """A user who started the bot and owns a forum supergroup where the bot is an admin."""

    user_id: int
    group_id: int


ALL_TOPIC_RIGHTS: dict[str, bool] = {
    "can_manage_topics": True,
    "can_delete_messages": True,
    "can_pin_messages": True,
}


@pytest.fixture
async def scene(control: SandboxClient) -> Scene:
    user_id = await control.create_user("Ada", last_name="Lovelace", username="ada")
    await control.send_message(user_id, user_id, "/start")
    group_id = await control.create_group("Ada's log", owner_id=user_id, is_forum=True)
    await control.set_bot_membership(
        group_id, by_id=user_id, status="administrator", rights=ALL_TOPIC_RIGHTS
    )
    return Scene(user_id, group_id)


async def raw_call(
    http: aiohttp.ClientSession,
    base_url: str,
    method: str,
    token: str = DEFAULT_BOT_TOKEN,
    **kwargs: Any,
) -> tuple[int, dict[str, Any]]:
    """POST a Bot API call without aiogram; returns (status, JSON body)."""
    async with http.post(f"{base_url}/bot{token}/{method}", **kwargs) as response:
        return response.status, await response.json()
