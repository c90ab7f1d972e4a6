"""GET /channels: what this deployment can deliver through, and whether each works now."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from gateway.api.keys import BOT, CHANNEL_STATUSES, CLOCK
from gateway.channel_monitor import ChannelStatus
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


def status_json(status: ChannelStatus) -> dict[str, Any]:
    return {
        "name": status.channel.value,
        "configured": status.configured,
        # null: configured but not checked yet
        "healthy": status.healthy if status.configured else False,
        "error": status.error,
        "checked_at": status.checked_at.isoformat() if status.checked_at else None,
    }


async def channels(request: web.Request) -> web.Response:
    telegram_ok = await telegram_reachable(request)
    listed = [
        {
            "name": Channel.TELEGRAM.value,
            "configured": True,
            "healthy": telegram_ok,
            "error": None if telegram_ok else "getMe failed",
            "checked_at": request.app[CLOCK]().isoformat(),
        }
    ]
    listed += [status_json(s) for s in request.app[CHANNEL_STATUSES]()]
    return web.json_response({"channels": listed})
