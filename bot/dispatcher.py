"""Builds the aiogram Dispatcher: routers per feature, dependencies injected as data."""

from __future__ import annotations

from aiogram import Dispatcher
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.middlewares import DbSessionMiddleware


def build_dispatcher(sessionmaker: async_sessionmaker[AsyncSession]) -> Dispatcher:
    dp = Dispatcher(sessionmaker=sessionmaker)
    dp.update.outer_middleware(DbSessionMiddleware(sessionmaker))
    # Feature routers are included here as they are built (one Router per feature module).
    return dp
