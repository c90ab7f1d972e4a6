"""aiohttp application factory for the HTTP API."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from aiogram import Bot
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.api.auth import auth_middleware
from gateway.api.channels import channels
from gateway.api.erase import erase_message
from gateway.api.errors import error_middleware
from gateway.api.health import health
from gateway.api.keys import (
    BOT,
    CHANNEL_STATUSES,
    CIPHER,
    CLOCK,
    DELETIONS,
    DELIVERY,
    SCHEDULER,
    SESSIONMAKER,
    SUBMITTER,
    TOKEN_CACHE,
    DeliveryHandle,
    SchedulerState,
)
from gateway.api.messages import message_status
from gateway.api.openapi import OPENAPI_PATH, openapi_document
from gateway.api.send import send
from gateway.api.unsubscribe import UNSUBSCRIBE, add_unsubscribe_routes
from gateway.channel_monitor import ChannelStatus, nothing_configured
from gateway.contact_setup import ContactSetup
from gateway.content_cipher import ContentCipher
from gateway.deletion import DeletionStats
from gateway.submission import Submitter
from gateway.token_cache import TokenCache
from storage.types import utcnow

API_PREFIX = "/api/v1/communication"
MAX_BODY_BYTES = 1024 * 1024


def _nobody() -> None:
    """No worker to wake in this process: the one elsewhere hears of new messages through
    storage.commit_watch, or finds them at its next poll."""


def create_api_app(
    sessionmaker: async_sessionmaker[AsyncSession],
    bot: Bot,
    cipher: ContentCipher,
    delivery: DeliveryHandle | None,
    *,
    clock: Callable[[], datetime] = utcnow,
    on_deferred: Callable[[datetime], None] | None = None,
    deletion_stats: DeletionStats | None = None,
    scheduler: SchedulerState | None = None,
    submitter: Submitter | None = None,
    channel_statuses: Callable[[], list[ChannelStatus]] = nothing_configured,
    contact_setup: ContactSetup | None = None,
    token_cache: TokenCache | None = None,
) -> web.Application:
    """`on_deferred(when)` is told of each message held for quiet hours (the releaser), unless a
    ready `submitter` (the composition root's, shared with the bot) is given. `delivery` is
    None where no worker runs in this process: health then reports the worker's heartbeat
    (gateway.worker_heartbeat), and an erasure has no rendered text here to forget."""
    # error_middleware is outermost so that auth failures and aiohttp's own errors (413 for an
    # oversized body, 404, 405) all come out as JSON.
    app = web.Application(
        middlewares=[error_middleware, auth_middleware], client_max_size=MAX_BODY_BYTES
    )
    app[SESSIONMAKER] = sessionmaker
    app[BOT] = bot
    app[CIPHER] = cipher
    app[CLOCK] = clock
    app[DELIVERY] = delivery
    app[DELETIONS] = deletion_stats or DeletionStats()
    app[SCHEDULER] = scheduler
    app[CHANNEL_STATUSES] = channel_statuses
    # Shared with the bot, whose revocations must reach it (gateway.token_cache).
    app[TOKEN_CACHE] = token_cache or TokenCache()
    app[SUBMITTER] = submitter or Submitter(
        sessionmaker,
        cipher,
        clock=clock,
        on_queued=delivery.notify if delivery is not None else _nobody,
        on_deferred=on_deferred,
    )
    app.router.add_get(f"{API_PREFIX}/health", health)
    app.router.add_post(f"{API_PREFIX}/send", send)
    app.router.add_get(f"{API_PREFIX}/messages/{{message_id}}", message_status)
    app.router.add_delete(f"{API_PREFIX}/messages/{{message_id}}", erase_message)
    app.router.add_get(f"{API_PREFIX}/channels", channels)
    app.router.add_get(OPENAPI_PATH, openapi_document)  # public: see auth.py
    if contact_setup is not None:  # email's one-click unsubscribe (public: see auth.py)
        app[UNSUBSCRIBE] = contact_setup
        add_unsubscribe_routes(app)
    return app
