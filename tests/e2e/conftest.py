"""The whole gateway (bot polling, HTTP API, delivery worker) running against the sandbox."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.delivery.pacing import TelegramRates
from gateway.runtime import GatewayConfig, run_gateway
from gateway.sandbox_demo import token_from
from sandbox.client import MessageView, SandboxClient
from sandbox.server import create_sandbox_app
from sandbox.state import DEFAULT_BOT_TOKEN

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
ADMIN_RIGHTS = {"can_manage_topics": True, "can_delete_messages": True}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def token_in(message: MessageView) -> str:
    """The token inside the /token reply's <code> entity."""
    token = token_from(message)
    assert token is not None, f"no token in a <code> entity: {message.text!r}"
    return token


class ShiftedClock:
    """The gateway's clock: real time moved by an offset, so tests can stand at any hour of the
    night while scheduled work (APScheduler's timers are real time) still comes due."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def set(self, at: datetime) -> None:
        self.offset = at - datetime.now(UTC)


@contextlib.asynccontextmanager
async def gateway_running(config: GatewayConfig, clock: ShiftedClock) -> AsyncIterator[None]:
    """run_gateway until the block ends, then stopped cleanly (its exception re-raised)."""
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run_gateway(config, stop, on_ready=ready.set, clock=clock))
    async with asyncio.timeout(15):
        waiter = asyncio.create_task(ready.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            waiter.cancel()
            task.result()  # raises why it could not start
    try:
        yield
    finally:
        stop.set()
        async with asyncio.timeout(15):
            await task


@dataclass
class Running:
    world: SandboxClient
    http: aiohttp.ClientSession
    api_url: str
    database_url: str
    config: GatewayConfig | None = None  # None: the gateway runs elsewhere (a subprocess)
    clock: ShiftedClock = field(default_factory=ShiftedClock)
    _gateway: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)

    async def start_gateway(self) -> None:
        assert self.config is not None, "this gateway is not run in-process"
        await self._gateway.enter_async_context(gateway_running(self.config, self.clock))

    async def stop_gateway(self) -> None:
        """Stop the gateway as a shutdown would; start_gateway runs a new one on the same DB."""
        await self._gateway.aclose()

    async def json_when(
        self,
        url: str,
        done: Callable[[dict[str, Any]], bool],
        headers: dict[str, str] | None = None,
        *,
        every: float = 0.0,
    ) -> dict[str, Any]:
        """GET `url` until its JSON answer satisfies `done` (the API has no push; bounded by
        time), `every` seconds apart."""
        async with asyncio.timeout(10):
            while True:
                async with self.http.get(url, headers=headers) as resp:
                    answer: dict[str, Any] = await resp.json()
                if done(answer):
                    return answer
                await asyncio.sleep(every)

    async def status_when(
        self, url: str, headers: dict[str, str], done: Callable[[dict[str, Any]], bool]
    ) -> dict[str, Any]:
        """GET the message status until `done` holds, and it is not being sent right now."""
        return await self.json_when(url, lambda s: done(s) and s["status"] != "sending", headers)

    async def person_with_log(self, name: str = "Ada") -> tuple[int, int, str]:
        """A person who linked a forum group with /setup and took a token from /token.

        The bot is added before the person ever talked to it, so adding it cannot link the
        group: the person is told to /start first, does, and then runs /setup in the group.
        """
        user = await self.world.create_user(name)
        group = await self.world.create_group(f"{name}'s log", owner_id=user, is_forum=True)
        await self.world.set_bot_membership(
            group, by_id=user, status="administrator", rights=ADMIN_RIGHTS
        )
        hint = await self.world.wait_for_bot_message(group)
        assert "/start" in (hint.text or "")
        await self.world.send_message(user, user, "/start")
        await self.world.wait_for_bot_message(user)
        await self.world.send_message(user, group, "/setup")
        await self.world.wait_for_chat(
            group,
            lambda c: (
                len(c.topics) == 5 and any(m.message_thread_id is None for m in c.bot_messages())
            ),
        )
        before = len((await self.world.get_chat(user)).bot_messages())
        await self.world.send_message(user, user, "/token")
        chat = await self.world.wait_for_chat(user, lambda c: len(c.bot_messages()) > before)
        return user, group, token_in(chat.bot_messages()[-1])


@pytest.fixture
async def running(aiohttp_server: ServerFactory, migrated_url: str) -> AsyncIterator[Running]:
    """The gateway in this process against a sandbox, on SQLite, or on PostgreSQL for a test
    parametrized `database_url="postgresql"` (indirect; see tests/conftest.py)."""
    sandbox = await aiohttp_server(create_sandbox_app())
    port = free_port()
    database_url = migrated_url
    config = GatewayConfig(
        bot_token=DEFAULT_BOT_TOKEN,
        telegram_api_url=str(sandbox.make_url("")).rstrip("/"),
        database_url=database_url,
        http_host="127.0.0.1",
        http_port=port,
        content_key=b"e" * 32,
        # The sandbox's flood control is off here; pacing has its own tests (tests/delivery).
        telegram_rates=TelegramRates.unlimited(),
    )
    async with aiohttp.ClientSession() as http:
        running = Running(
            SandboxClient(str(sandbox.make_url("")).rstrip("/"), http),
            http,
            f"http://127.0.0.1:{port}",
            database_url,
            config,
        )
        await running.start_gateway()
        try:
            yield running
        finally:
            await running.stop_gateway()
