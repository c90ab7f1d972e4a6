"""Fixtures: the real sandbox over HTTP, a migrated SQLite database holding a person whose
personal log (a forum group with one topic per category) is linked, and a worker factory."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiogram import Bot
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from gateway.content_cipher import ContentCipher
from gateway.delivery import DeliveryWorker
from gateway.delivery.pacing import TelegramRates
from gateway.outbox_payload import OutboxPayload
from gateway.topics import CREATED_TOPICS, TOPICS
from storage.enums import Category, MessageStatus, Priority
from storage.models import ApiToken, LogGroup, Message, Topic, User
from tests.sandbox import conftest as sandbox_fixtures
from tests.sandbox.conftest import Scene

# The sandbox fixtures (a server on a free port, its control client, an aiogram Bot, a person
# with a forum group where the bot is an admin), shared rather than copied.
server = sandbox_fixtures.server
base_url = sandbox_fixtures.base_url
http = sandbox_fixtures.http
control = sandbox_fixtures.control
bot = sandbox_fixtures.bot
scene = sandbox_fixtures.scene
fake_clock = sandbox_fixtures.fake_clock

START = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


class UTCClock:
    """The worker's clock: aware UTC datetimes that only move when told to."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> UTCClock:
    return UTCClock()


@pytest.fixture
def cipher() -> ContentCipher:
    return ContentCipher(os.urandom(32))


@dataclass
class Personal:
    """The person (database id) and their linked personal log in the sandbox."""

    user_id: int
    group_id: int
    chat_id: int
    threads: dict[Category, int | None]
    token_id: int  # an API token of theirs, which `enqueue` sends with by default


@pytest.fixture
async def personal(
    sessionmaker: async_sessionmaker[AsyncSession], bot: Bot, scene: Scene
) -> Personal:
    threads: dict[Category, int | None] = {Category.GENERAL: None}
    for spec in CREATED_TOPICS:
        topic = await bot.create_forum_topic(scene.group_id, spec.name, icon_color=spec.icon_color)
        threads[spec.category] = topic.message_thread_id
    async with sessionmaker() as session, session.begin():
        user = User(telegram_id=scene.user_id)
        session.add(user)
        await session.flush()
        group = LogGroup(chat_id=scene.group_id, owner_id=user.id, is_forum=True)
        session.add(group)
        await session.flush()
        for category, thread in threads.items():
            session.add(
                Topic(
                    group_id=group.id,
                    category=category,
                    message_thread_id=thread,
                    name=TOPICS[category].name,
                )
            )
        token = ApiToken(owner_id=user.id, token_hash="t" * 64, prefix="lgp_test", scopes=["send"])
        session.add(token)
    return Personal(user.id, group.id, scene.group_id, threads, token.id)


Enqueue = Callable[..., Any]


@pytest.fixture
def enqueue(
    sessionmaker: async_sessionmaker[AsyncSession],
    cipher: ContentCipher,
    clock: UTCClock,
    personal: Personal,
) -> Enqueue:
    """Commit a queued message for the person, as the submission path does; returns its id."""

    async def add(
        value: Any = "hello",
        *,
        kind: str = "text",
        category: Category = Category.AUTH,
        hashtags: tuple[str, ...] = (),
        thread_id: int | None = None,
        disable_preview: bool = False,
        silent: bool = False,
        self_destruct_seconds: int | None = None,
        ephemeral: bool = False,
        status: MessageStatus = MessageStatus.QUEUED,
        claimed_until: datetime | None = None,
        created_offset: float = 0.0,
        from_token: bool = True,
    ) -> str:
        # created_offset orders messages due at the same time (the queue is oldest first).
        # from_token=False: a message of the gateway's own (a notice), which no token sent.
        message_id = str(uuid.uuid4())
        payload = OutboxPayload.from_dict(
            {
                "kind": kind,
                "value": value,
                "hashtags": list(hashtags),
                "thread_id": thread_id,
                "disable_preview": disable_preview,
                "silent": silent,
                "self_destruct_seconds": self_destruct_seconds,
                "ephemeral": ephemeral,
            }
        )
        created = clock() + timedelta(seconds=created_offset)
        async with sessionmaker() as session, session.begin():
            session.add(
                Message(
                    id=message_id,
                    sender_token_id=personal.token_id if from_token else None,
                    recipient_id=personal.user_id,
                    category=category,
                    priority=Priority.NORMAL,
                    status=status,
                    encrypted_content=cipher.seal(message_id, payload.to_dict()),
                    created_at=created,
                    next_attempt_at=clock(),
                    claimed_until=claimed_until,
                    retention_expires_at=created + timedelta(days=1),
                )
            )
        return message_id

    return add


WorkerFactory = Callable[..., DeliveryWorker]


@pytest.fixture
def make_worker(
    sessionmaker: async_sessionmaker[AsyncSession],
    bot: Bot,
    cipher: ContentCipher,
    clock: UTCClock,
) -> WorkerFactory:
    def make(**overrides: Any) -> DeliveryWorker:
        # Unpaced unless a test asks for pacing (tests/delivery/test_paced_worker.py does),
        # and no burst folding unless a test asks for it (tests/delivery/test_coalescing.py):
        # these tests follow messages one by one.
        options: dict[str, Any] = {
            "clock": clock,
            "rng": lambda: 0.5,
            "poll_interval": 0.05,
            "rates": TelegramRates.unlimited(),
            "coalesce_bursts": False,
        }
        return DeliveryWorker(sessionmaker, bot, cipher, **(options | overrides))

    return make


async def load(sessionmaker: async_sessionmaker[AsyncSession], message_id: str) -> Message:
    """The message row with its attempts, fresh from the database."""
    async with sessionmaker() as session:
        message = await session.scalar(
            select(Message).where(Message.id == message_id).options(selectinload(Message.attempts))
        )
        assert message is not None
        return message


async def load_group(sessionmaker: async_sessionmaker[AsyncSession], group_id: int) -> LogGroup:
    async with sessionmaker() as session:
        group = await session.scalar(
            select(LogGroup).where(LogGroup.id == group_id).options(selectinload(LogGroup.topics))
        )
        assert group is not None
        return group


@pytest.fixture
async def scheduler() -> AsyncIterator[AsyncIOScheduler]:
    """A running APScheduler for the releaser, the deleter and the purger."""
    scheduler = AsyncIOScheduler()
    scheduler.start()
    yield scheduler
    scheduler.shutdown(wait=False)
