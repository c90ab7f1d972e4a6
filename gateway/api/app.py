"""aiohttp application factory for the HTTP API."""

from __future__ import annotations

from aiogram import Bot
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.api.errors import error_middleware
from gateway.api.health import BOT, SESSIONMAKER, health

API_PREFIX = "/api/v1/communication"
MAX_BODY_BYTES = 1024 * 1024


def create_api_app(sessionmaker: async_sessionmaker[AsyncSession], bot: Bot) -> web.Application:
    app = web.Application(middlewares=[error_middleware], client_max_size=MAX_BODY_BYTES)
    app[SESSIONMAKER] = sessionmaker
    app[BOT] = bot
    app.router.add_get(f"{API_PREFIX}/health", health)
    return app
