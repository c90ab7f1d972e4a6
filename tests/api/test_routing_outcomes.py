"""The submission answer carries the routing plan's outcome: queued, deferred or suppressed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest
from aiogram import Bot
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.api.app import create_api_app
from gateway.content_cipher import ContentCipher
from gateway.outbox_payload import OutboxPayload
from storage.enums import MessageStatus
from storage.models import Message, UserPreferences
from tests.api.conftest import Client, Person, RecordingDelivery

SEND = "/api/v1/communication/send"
TOKYO_NIGHT = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)  # 23:00 in Tokyo, inside 22:00-08:00
TOKYO_DAY = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)  # 12:00 in Tokyo
ClientFactory = Callable[[web.Application], Awaitable[Client]]


@pytest.fixture
def held() -> list[datetime]:
    """What the API told the releaser: one due time per message held for quiet hours."""
    return []


@pytest.fixture
def make_api(
    aiohttp_client: ClientFactory,
    sessionmaker: async_sessionmaker[AsyncSession],
    bot: Bot,
    cipher: ContentCipher,
    delivery: RecordingDelivery,
    held: list[datetime],
) -> Callable[[datetime], Awaitable[Client]]:
    async def make(now: datetime) -> Client:
        app = create_api_app(
            sessionmaker, bot, cipher, delivery, clock=lambda: now, on_deferred=held.append
        )
        return await aiohttp_client(app)

    return make


async def _row(sessionmaker: async_sessionmaker[AsyncSession], message_id: str) -> Message:
    async with sessionmaker() as session:
        row = await session.get(Message, message_id)
    assert row is not None
    return row


async def test_a_category_turned_off_is_suppressed_and_nothing_kept(
    make_api: Callable[[datetime], Awaitable[Client]],
    person: Person,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    api = await make_api(TOKYO_DAY)
    resp = await api.post(
        SEND, json={"category": "plugin", "content": {"text": "x"}}, headers=person.auth
    )
    body = await resp.json()
    assert resp.status == 202
    assert body["status"] == "suppressed"
    assert body["reason"] == "category plugin is turned off"
    row = await _row(sessionmaker, body["message_id"])
    assert row.status is MessageStatus.SUPPRESSED
    assert row.encrypted_content is None


@pytest.mark.parametrize(
    ("now", "priority", "category", "silent"),
    [
        (TOKYO_NIGHT, "normal", "system", True),
        (TOKYO_DAY, "normal", "system", False),
        (TOKYO_NIGHT, "urgent", "system", False),
        (TOKYO_NIGHT, "high", "auth", False),
    ],
)
async def test_quiet_hours_make_delivery_silent(
    make_api: Callable[[datetime], Awaitable[Client]],
    person: Person,
    sessionmaker: async_sessionmaker[AsyncSession],
    cipher: ContentCipher,
    now: datetime,
    priority: str,
    category: str,
    silent: bool,
) -> None:
    api = await make_api(now)
    body = {"category": category, "priority": priority, "content": {"text": "x"}}
    resp = await api.post(SEND, json=body, headers=person.auth)
    data = await resp.json()
    assert data["status"] == "queued"
    row = await _row(sessionmaker, data["message_id"])
    assert row.encrypted_content is not None
    assert OutboxPayload.from_dict(cipher.open(row.id, row.encrypted_content)).silent is silent


async def test_a_message_that_would_expire_while_deferred_goes_now_silently(
    make_api: Callable[[datetime], Awaitable[Client]],
    person: Person,
    sessionmaker: async_sessionmaker[AsyncSession],
    cipher: ContentCipher,
    delivery: RecordingDelivery,
    held: list[datetime],
) -> None:
    # Held until 08:00 but kept one hour, it would be dropped unseen at midnight.
    async with sessionmaker() as session, session.begin():
        session.add(UserPreferences(user_id=person.user_id, quiet_mode="defer"))
    api = await make_api(TOKYO_NIGHT)
    body = {"content": {"text": "x"}, "retention_seconds": 3600}
    resp = await api.post(SEND, json=body, headers=person.auth)
    data = await resp.json()
    assert resp.status == 202
    assert data["status"] == "queued"
    assert "deferred_until" not in data
    row = await _row(sessionmaker, data["message_id"])
    assert row.status is MessageStatus.QUEUED
    assert row.encrypted_content is not None
    assert OutboxPayload.from_dict(cipher.open(row.id, row.encrypted_content)).silent
    assert held == []
    assert delivery.notified == 1


async def test_defer_mode_holds_the_message_until_the_window_ends(
    make_api: Callable[[datetime], Awaitable[Client]],
    person: Person,
    sessionmaker: async_sessionmaker[AsyncSession],
    delivery: RecordingDelivery,
    held: list[datetime],
) -> None:
    async with sessionmaker() as session, session.begin():
        session.add(UserPreferences(user_id=person.user_id, quiet_mode="defer"))
    api = await make_api(TOKYO_NIGHT)
    resp = await api.post(SEND, json={"content": {"text": "x"}}, headers=person.auth)
    data = await resp.json()
    assert resp.status == 202
    assert data["status"] == "deferred"
    assert data["deferred_until"] == "2026-11-24T23:00:00+00:00"  # 08:00 in Tokyo
    row = await _row(sessionmaker, data["message_id"])
    # Held apart from the outbox: the worker is not woken, the releaser is told when.
    assert row.status is MessageStatus.DEFERRED
    assert row.next_attempt_at == datetime(2026, 11, 24, 23, 0, tzinfo=UTC)
    assert row.encrypted_content is not None
    assert held == [datetime(2026, 11, 24, 23, 0, tzinfo=UTC)]
    assert delivery.notified == 0
