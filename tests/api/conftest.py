"""The HTTP API served for real (aiohttp test server) over a migrated SQLite database.

The delivery worker is replaced by a recorder: these tests are about accepting messages; the
worker's own tests deliver them through the sandbox.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import pytest
from aiogram import Bot
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.api.app import create_api_app
from gateway.content_cipher import ContentCipher
from gateway.runtime import build_bot
from gateway.tokens import new_personal_token
from gateway.topics import TOPICS
from sandbox.server import create_sandbox_app
from sandbox.state import DEFAULT_BOT_TOKEN
from storage.engine import create_engine, create_sessionmaker
from storage.models import LogGroup, Topic, User
from storage.repositories import tokens

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[[web.Application], Awaitable[Client]]


@dataclass
class RecordingDelivery:
    notified: int = 0
    running: bool = True
    last_error: str | None = None
    last_run_at: datetime | None = None
    unknown_send_outcomes: int = 0
    forgotten: int = 0  # forget_rendered() calls

    def notify(self) -> None:
        self.notified += 1

    def state(self) -> RecordingDelivery:
        return self

    def forget_rendered(self) -> None:
        self.forgotten += 1


@dataclass
class Person:
    user_id: int
    token: str
    token_id: int
    thread_ids: dict[str, int | None]

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
def cipher() -> ContentCipher:
    return ContentCipher(b"k" * 32)


@pytest.fixture
def delivery() -> RecordingDelivery:
    return RecordingDelivery()


@pytest.fixture
async def bot(aiohttp_server: ServerFactory) -> AsyncIterator[Bot]:
    sandbox = await aiohttp_server(create_sandbox_app())
    bot = build_bot(DEFAULT_BOT_TOKEN, str(sandbox.make_url("")).rstrip("/"))
    yield bot
    await bot.session.close()


@pytest.fixture
async def api(
    aiohttp_client: ClientFactory,
    sessionmaker: async_sessionmaker[AsyncSession],
    bot: Bot,
    cipher: ContentCipher,
    delivery: RecordingDelivery,
) -> Client:
    return await aiohttp_client(create_api_app(sessionmaker, bot, cipher, delivery))


async def make_person(
    sessionmaker: async_sessionmaker[AsyncSession], telegram_id: int, *, linked: bool = True
) -> Person:
    new = new_personal_token()
    async with sessionmaker() as session, session.begin():
        user = User(telegram_id=telegram_id)
        session.add(user)
        await session.flush()
        token = await tokens.add(session, user.id, new.token_hash, new.prefix, ["send"])
        threads: dict[str, int | None] = {}
        if linked:
            group = LogGroup(chat_id=-100_000_000 - telegram_id, owner_id=user.id, is_forum=True)
            session.add(group)
            await session.flush()
            for n, spec in enumerate(TOPICS.values(), start=2):
                thread = None if spec.icon_color is None else telegram_id * 10 + n
                threads[spec.category.value] = thread
                session.add(
                    Topic(
                        group_id=group.id,
                        category=spec.category,
                        message_thread_id=thread,
                        name=spec.name,
                    )
                )
    return Person(user.id, new.secret, token.id, threads)


@pytest.fixture
async def person(sessionmaker: async_sessionmaker[AsyncSession]) -> Person:
    return await make_person(sessionmaker, 501)


@contextmanager
def refused_port() -> Iterator[int]:
    """A local port that refuses connections for as long as the block runs: bound, never
    listening, so no other server can take it meanwhile."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield int(held.getsockname()[1])


@pytest.fixture
async def unreachable(
    aiohttp_client: ClientFactory, bot: Bot, cipher: ContentCipher
) -> AsyncIterator[Client]:
    """The API over a PostgreSQL server that refuses connections: the first thing a request
    needs of the database (its token's lookup) fails."""
    with refused_port() as port:
        engine = create_engine(f"postgresql+asyncpg://libral@127.0.0.1:{port}/gone")
        try:
            app = create_api_app(create_sessionmaker(engine), bot, cipher, RecordingDelivery())
            yield await aiohttp_client(app)
        finally:
            await engine.dispose()
