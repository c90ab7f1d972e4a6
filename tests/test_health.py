"""Health reports each dependency and answers 503 when one is down."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.api.app import create_api_app
from gateway.content_cipher import ContentCipher
from gateway.runtime import build_bot
from sandbox.server import create_sandbox_app
from sandbox.state import DEFAULT_BOT_TOKEN
from tests.api.conftest import RecordingDelivery

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
ClientFactory = Callable[[web.Application], Awaitable[TestClient[web.Request, web.Application]]]


async def test_health_ok_against_sandbox(
    aiohttp_server: ServerFactory,
    aiohttp_client: ClientFactory,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    sandbox = await aiohttp_server(create_sandbox_app())
    bot = build_bot(DEFAULT_BOT_TOKEN, str(sandbox.make_url("")).rstrip("/"))
    try:
        client = await aiohttp_client(
            create_api_app(sessionmaker, bot, ContentCipher(b"k" * 32), RecordingDelivery())
        )
        resp = await client.get("/api/v1/communication/health")
        body = await resp.json()
        assert resp.status == 200, body
        assert body == {
            "database": {"ok": True},
            "queue_depth": 0,
            "telegram": {"ok": True, "username": "libral_sandbox_bot"},
            "worker": {
                "ok": True,
                "last_error": None,
                "last_run_at": None,
                "unknown_send_outcomes": 0,
            },
            "channels": {},
            "deletions": {
                "pending": 0,
                "overdue": 0,
                "oldest_due": None,
                "deleted": 0,
                "given_up": 0,
                "last_lateness_seconds": None,
                "max_lateness_seconds": 0.0,
            },
            "status": "ok",
        }
    finally:
        await bot.session.close()


async def test_health_503_when_telegram_rejects_token(
    aiohttp_server: ServerFactory,
    aiohttp_client: ClientFactory,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    sandbox = await aiohttp_server(create_sandbox_app())
    bot = build_bot("123:" + "x" * 35, str(sandbox.make_url("")).rstrip("/"))
    try:
        client = await aiohttp_client(
            create_api_app(sessionmaker, bot, ContentCipher(b"k" * 32), RecordingDelivery())
        )
        resp = await client.get("/api/v1/communication/health")
        body = await resp.json()
        assert resp.status == 503
        assert body["telegram"] == {"ok": False, "error": "TelegramUnauthorizedError"}
        assert body["database"] == {"ok": True}
        assert body["status"] == "degraded"
    finally:
        await bot.session.close()


async def test_health_503_when_database_is_gone(
    aiohttp_server: ServerFactory,
    aiohttp_client: ClientFactory,
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    sandbox = await aiohttp_server(create_sandbox_app())
    bot = build_bot(DEFAULT_BOT_TOKEN, str(sandbox.make_url("")).rstrip("/"))
    async with engine.begin() as conn:
        from sqlalchemy import text

        await conn.execute(text("DROP TABLE delivery_attempts"))
        await conn.execute(text("DROP TABLE messages"))
    try:
        client = await aiohttp_client(
            create_api_app(sessionmaker, bot, ContentCipher(b"k" * 32), RecordingDelivery())
        )
        resp = await client.get("/api/v1/communication/health")
        body = await resp.json()
        assert resp.status == 503
        assert body["database"]["ok"] is False
        assert body["telegram"]["ok"] is True
    finally:
        await bot.session.close()


async def test_unknown_path_is_json_404(
    aiohttp_client: ClientFactory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    bot = build_bot(DEFAULT_BOT_TOKEN, "http://127.0.0.1:9")
    try:
        client = await aiohttp_client(
            create_api_app(sessionmaker, bot, ContentCipher(b"k" * 32), RecordingDelivery())
        )
        resp = await client.get("/nope")
        assert resp.status == 404
        assert (await resp.json())["error"]["code"] == "not_found"
    finally:
        await bot.session.close()


async def test_a_configured_channel_failing_its_check_degrades_health(
    aiohttp_server: ServerFactory,
    aiohttp_client: ClientFactory,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    from gateway.channel_monitor import ChannelStatus
    from storage.enums import Channel

    def statuses() -> list[ChannelStatus]:
        return [
            ChannelStatus(Channel.EMAIL, configured=True, healthy=False, error="Transient"),
            ChannelStatus(Channel.WEBHOOK, configured=True, healthy=True),
            ChannelStatus(Channel.SMS, configured=False, healthy=None),
        ]

    sandbox = await aiohttp_server(create_sandbox_app())
    bot = build_bot(DEFAULT_BOT_TOKEN, str(sandbox.make_url("")).rstrip("/"))
    try:
        app = create_api_app(
            sessionmaker,
            bot,
            ContentCipher(b"k" * 32),
            RecordingDelivery(),
            channel_statuses=statuses,
        )
        client = await aiohttp_client(app)
        resp = await client.get("/api/v1/communication/health")
        body = await resp.json()
        assert resp.status == 503
        assert body["failing"] == ["channel:email"]
        assert body["channels"] == {
            "email": {"ok": False, "error": "Transient"},
            "webhook": {"ok": True, "error": None},
        }
    finally:
        await bot.session.close()
