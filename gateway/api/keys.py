"""Typed application state of the HTTP API (aiohttp `web.AppKey`s)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from aiogram import Bot
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.channel_monitor import ChannelStatus
from gateway.content_cipher import ContentCipher
from gateway.deletion import DeletionStats
from gateway.submission import Submitter
from gateway.token_cache import TokenCache, VerifiedToken


class WorkerStatus(Protocol):
    @property
    def running(self) -> bool: ...
    @property
    def last_error(self) -> str | None: ...
    @property
    def last_run_at(self) -> datetime | None: ...
    @property
    def unknown_send_outcomes(self) -> int: ...


class DeliveryHandle(Protocol):
    """What the API needs of the delivery worker: a nudge after a commit, its health, and to
    forget rendered text after an erasure."""

    def notify(self) -> None: ...

    def state(self) -> WorkerStatus: ...

    def forget_rendered(self) -> None:
        """A message was erased: forget the text the worker rendered and keeps for a while."""


class SchedulerState(Protocol):
    """APScheduler's scheduler as health sees it."""

    @property
    def running(self) -> bool: ...


SESSIONMAKER = web.AppKey("sessionmaker", async_sessionmaker[AsyncSession])
BOT = web.AppKey("bot", Bot)
CIPHER = web.AppKey("cipher", ContentCipher)
Clock = Callable[[], datetime]
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
# None in a process that runs no delivery worker (`serve --role api`).
DELIVERY = web.AppKey[DeliveryHandle | None]("delivery")
SUBMITTER = web.AppKey("submitter", Submitter)
DELETIONS = web.AppKey("deletions", DeletionStats)
SCHEDULER: web.AppKey[SchedulerState | None] = web.AppKey("scheduler")
# The fallback channels' last check results (gateway.channel_monitor).
CHANNEL_STATUSES: web.AppKey[Callable[[], list[ChannelStatus]]] = web.AppKey("channel_statuses")

# Set per request by the auth middleware.
AUTHENTICATED = web.RequestKey("authenticated", VerifiedToken)
TOKEN_CACHE = web.AppKey("token_cache", TokenCache)


def request_token(request: web.Request) -> VerifiedToken:
    return request[AUTHENTICATED]
