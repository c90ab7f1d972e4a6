"""GET /api/v1/communication/health: is each dependency reachable? 200 if all are, else 503."""

from __future__ import annotations

import asyncio
import logging

from aiogram import Bot
from aiohttp import web
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.enums import MessageStatus
from storage.models import Message

log = logging.getLogger(__name__)

SESSIONMAKER = web.AppKey("sessionmaker", async_sessionmaker[AsyncSession])
BOT = web.AppKey("bot", Bot)

_CHECK_TIMEOUT = 5.0


async def _database(request: web.Request) -> tuple[bool, int | None]:
    async with request.app[SESSIONMAKER]() as session:
        await session.execute(text("SELECT 1"))
        depth = await session.scalar(
            select(func.count()).select_from(Message).where(Message.status == MessageStatus.QUEUED)
        )
    return True, int(depth or 0)


async def _telegram(request: web.Request) -> dict[str, object]:
    me = await request.app[BOT].get_me()
    return {"ok": True, "username": me.username}


async def health(request: web.Request) -> web.Response:
    body: dict[str, object] = {}
    healthy = True
    try:
        async with asyncio.timeout(_CHECK_TIMEOUT):
            _, depth = await _database(request)
        body["database"] = {"ok": True}
        body["queue_depth"] = depth
    except Exception as exc:
        log.warning("health: database check failed: %s", type(exc).__name__)
        body["database"] = {"ok": False, "error": type(exc).__name__}
        healthy = False
    try:
        async with asyncio.timeout(_CHECK_TIMEOUT):
            body["telegram"] = await _telegram(request)
    except Exception as exc:
        log.warning("health: telegram check failed: %s", type(exc).__name__)
        body["telegram"] = {"ok": False, "error": type(exc).__name__}
        healthy = False
    body["status"] = "ok" if healthy else "degraded"
    return web.json_response(body, status=200 if healthy else 503)
