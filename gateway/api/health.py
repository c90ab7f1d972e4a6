"""GET /health: is each dependency working? 200 if all are, else 503 naming what is not."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web
from sqlalchemy import text

from gateway.api.keys import BOT, DELIVERY, SESSIONMAKER
from storage.repositories.messages import queue_depth

log = logging.getLogger(__name__)

_CHECK_TIMEOUT = 5.0


async def _database(request: web.Request) -> int:
    async with request.app[SESSIONMAKER]() as session:
        await session.execute(text("SELECT 1"))
        return await queue_depth(session)


async def health(request: web.Request) -> web.Response:
    body: dict[str, Any] = {}
    failing: list[str] = []
    try:
        async with asyncio.timeout(_CHECK_TIMEOUT):
            depth = await _database(request)
        body["database"] = {"ok": True}
        body["queue_depth"] = depth
    except Exception as exc:
        log.warning("health: database check failed: %s", type(exc).__name__)
        body["database"] = {"ok": False, "error": type(exc).__name__}
        failing.append("database")
    try:
        async with asyncio.timeout(_CHECK_TIMEOUT):
            me = await request.app[BOT].get_me()
        body["telegram"] = {"ok": True, "username": me.username}
    except Exception as exc:
        log.warning("health: telegram check failed: %s", type(exc).__name__)
        body["telegram"] = {"ok": False, "error": type(exc).__name__}
        failing.append("telegram")
    worker = request.app[DELIVERY].state()
    body["worker"] = {
        "ok": worker.running,
        "last_error": worker.last_error,
        "last_run_at": worker.last_run_at.isoformat() if worker.last_run_at else None,
    }
    if not worker.running:
        failing.append("worker")
    body["status"] = "ok" if not failing else "degraded"
    if failing:
        body["failing"] = failing
    return web.json_response(body, status=200 if not failing else 503)
