"""GET /channels: what this deployment can deliver through, and whether each works now."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from gateway.api.keys import BOT
from storage.enums import Channel

log = logging.getLogger(__name__)


async def telegram_reachable(request: web.Request) -> bool:
    try:
        async with asyncio.timeout(5):
            await request.app[BOT].get_me()
    except Exception as exc:
        log.warning("telegram getMe failed: %s", type(exc).__name__)
        return False
    return True


async def channels(request: web.Request) -> web.Response:
    telegram_ok = await telegram_reachable(request)
    listed = [{"name": Channel.TELEGRAM.value, "configured": True, "healthy": telegram_ok}]
    # The fallback channels exist in the model but have no adapter in this deployment yet.
    listed += [
        {"name": c.value, "configured": False, "healthy": False}
        for c in Channel
        if c is not Channel.TELEGRAM
    ]
    return web.json_response({"channels": listed})
