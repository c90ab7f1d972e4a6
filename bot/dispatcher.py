"""Builds the aiogram Dispatcher: routers per feature, dependencies injected as data."""

from __future__ import annotations

from typing import Any

from aiogram import Dispatcher
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.commands import register_commands
from bot.middlewares import ChatLockMiddleware, CurrentUserMiddleware, DbSessionMiddleware
from bot.routers import feature_routers
from gateway.contact_setup import ContactSetup
from gateway.submission import Submitter
from gateway.token_cache import TokenCache


def build_dispatcher(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    public_api_url: str | None = None,
    submitter: Submitter | None = None,
    contact_setup: ContactSetup | None = None,
    token_cache: TokenCache | None = None,
) -> Dispatcher:
    """`public_api_url` (e.g. LIBRAL_PUBLIC_URL) is shown in /token's curl example; `submitter`
    is the outbox entrance /test sends through (the one the HTTP API uses); `contact_setup`
    serves /email, /webhook, /phone, /push and /channels (without it they say "not available")."""
    data: dict[str, Any] = {"sessionmaker": sessionmaker}
    if public_api_url:
        data["public_api_url"] = public_api_url
    if submitter is not None:
        data["submitter"] = submitter
    if contact_setup is not None:
        data["contact_setup"] = contact_setup
    if token_cache is not None:  # the HTTP API's: revocations must reach it at once
        data["token_cache"] = token_cache
    dp = Dispatcher(**data)
    # Order matters (first registered runs outermost): the chat lock spans the commit, and the
    # user lookup runs inside the session that DbSessionMiddleware opens.
    dp.update.outer_middleware(ChatLockMiddleware())
    dp.update.outer_middleware(DbSessionMiddleware(sessionmaker))
    dp.update.outer_middleware(CurrentUserMiddleware())
    dp.include_routers(*feature_routers())
    dp.startup.register(register_commands)
    return dp
