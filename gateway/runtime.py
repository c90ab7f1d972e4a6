"""The composition root: builds settings-driven objects and runs them in one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.dispatcher import build_dispatcher
from gateway.api.app import create_api_app
from gateway.channel_monitor import CHECK_INTERVAL_SECONDS, ChannelMonitor
from gateway.channel_wiring import ChannelsConfig, FallbackChannels, build_channels
from gateway.contact_setup import ContactSetup
from gateway.content_cipher import ContentCipher
from gateway.deferred import DeferredReleaser
from gateway.deletion import CopyDeleter
from gateway.delivery import DeliveryWorker
from gateway.delivery.bot_pacing import PacedBotRequests
from gateway.delivery.pacing import TelegramRates
from gateway.recipient_cache import RecipientCache
from gateway.response_models import KeepResponseModels
from gateway.retention import RetentionPurger
from gateway.roles import Role
from gateway.submission import Submitter
from gateway.token_cache import TokenCache
from gateway.worker_heartbeat import BEAT_SECONDS, Heartbeat
from storage.commit_watch import (
    is_postgresql,
    listen_for_commits,
    sqlite_file,
    watch_commits,
)
from storage.engine import create_engine, create_sessionmaker
from storage.types import utcnow

log = logging.getLogger(__name__)
# How long the commit watch may take to end by itself at shutdown.
WATCH_STOP_SECONDS = 2.0
# How long shutdown waits to write the worker's last, stopped, heartbeat.
LAST_BEAT_SECONDS = 5.0


# How long an "api" process trusts a verified token or a recipient's state it read.
API_ROLE_CACHE_TTL = timedelta(seconds=5)


@dataclass(frozen=True)
class GatewayConfig:
    """What the runtime needs, already validated (from Settings or from the sandbox command)."""

    bot_token: str
    telegram_api_url: str
    database_url: str
    http_host: str
    http_port: int
    content_key: bytes
    public_url: str | None = None
    channels: ChannelsConfig = field(default_factory=ChannelsConfig)
    telegram_rates: TelegramRates = field(default_factory=TelegramRates)
    # Seconds the delivery worker waits for one Bot API send before its outcome is unknown.
    telegram_request_timeout: int = 20
    # "all": bot, HTTP API, delivery worker and scheduled work. "api": the HTTP API alone, to
    # run more of beside one "all" process (see README, Running several processes).
    role: Role = "all"
    # Seconds between the worker's looks at the outbox when nothing wakes it (other processes'
    # commits wake it through storage.commit_watch; the poll covers a watch that is down).
    worker_poll_interval: float = 1.0
    reuse_port: bool = False  # SO_REUSEPORT, so that such processes share http_port

    @property
    def api_base_url(self) -> str:
        return self.public_url or f"http://{self.http_host}:{self.http_port}"


def build_bot(token: str, api_url: str) -> Bot:
    session = AiohttpSession(api=TelegramAPIServer.from_base(api_url))
    session.middleware(KeepResponseModels())
    return Bot(token, session=session, default=DefaultBotProperties(parse_mode=ParseMode.HTML))


@dataclass
class Gateway:
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    bot: Bot
    dispatcher: Dispatcher
    worker: DeliveryWorker
    scheduler: AsyncIOScheduler
    releaser: DeferredReleaser
    deleter: CopyDeleter
    purger: RetentionPurger
    channels: FallbackChannels
    monitor: ChannelMonitor
    api: web.Application
    heartbeat: Heartbeat  # written only where the worker runs (role "all")


def build_gateway(config: GatewayConfig, clock: Callable[[], datetime] = utcnow) -> Gateway:
    """Everything wired together; `clock` (aware UTC) is injectable for tests of quiet hours."""
    engine = create_engine(config.database_url)
    sessionmaker = create_sessionmaker(engine)
    bot = build_bot(config.bot_token, config.telegram_api_url)
    cipher = ContentCipher(config.content_key)
    scheduler = AsyncIOScheduler(timezone=UTC)
    # The worker wakes for the notices these queue; it is built after them, hence the lambda.
    deleter = CopyDeleter(
        sessionmaker, bot, cipher, scheduler, on_notice=lambda: worker.notify(), clock=clock
    )
    purger = RetentionPurger(
        sessionmaker, cipher, scheduler, on_notice=lambda: worker.notify(), clock=clock
    )
    channels = build_channels(config.channels, clock)
    monitor = ChannelMonitor(channels.adapters, clock=clock)
    api_only = config.role == "api"
    # What accepting and delivering need to know of a recipient, forgotten at once by this
    # process's writes (gateway.recipient_cache); built before any session, as it hooks the
    # sessionmaker's. An "api" process hears of none of the bot's (it runs elsewhere): what it
    # keeps lives for seconds, not a minute.
    recipients = (
        RecipientCache(sessionmaker, ttl_seconds=API_ROLE_CACHE_TTL.total_seconds())
        if api_only
        else RecipientCache(sessionmaker)
    )
    worker = DeliveryWorker(
        sessionmaker,
        bot,
        cipher,
        clock=clock,
        on_deletion_scheduled=deleter.due_at,
        fallbacks=channels.adapters,
        public_url=config.api_base_url,
        policies=channels.policies,
        rates=config.telegram_rates,
        request_timeout=config.telegram_request_timeout,
        poll_interval=config.worker_poll_interval,
        recipients=recipients,
    )
    if worker.pacing is not None:
        # The bot's own messages take their slots from the same buckets as deliveries.
        bot.session.middleware(PacedBotRequests(worker.pacing, clock))
    releaser = DeferredReleaser(
        sessionmaker, cipher, scheduler, on_released=worker.notify, clock=clock
    )
    # The API's verified tokens, forgotten at once by the bot's revocations in this process;
    # in an "api" process, kept for seconds only (as the recipients above).
    token_cache = TokenCache(ttl=API_ROLE_CACHE_TTL) if api_only else TokenCache()
    contact_setup = ContactSetup(
        cipher,
        channels.email,
        channels.webhook,
        clock=clock,
        public_url=config.api_base_url,
        allow_local_urls=config.channels.allow_local_urls,
    )
    submitter = Submitter(
        sessionmaker,
        cipher,
        clock=clock,
        on_queued=worker.notify,
        on_deferred=releaser.due_at,
        on_retention=purger.due_at,
        recipients=recipients,
        # The worker is in the "all" process, which on PostgreSQL listens for these (on SQLite
        # it sees every commit: storage.commit_watch).
        announce_commits=api_only and is_postgresql(config.database_url),
    )
    return Gateway(
        engine=engine,
        sessionmaker=sessionmaker,
        bot=bot,
        dispatcher=build_dispatcher(
            sessionmaker,
            public_api_url=config.api_base_url,
            submitter=submitter,
            contact_setup=contact_setup,
            token_cache=token_cache,
        ),
        worker=worker,
        scheduler=scheduler,
        releaser=releaser,
        deleter=deleter,
        purger=purger,
        channels=channels,
        monitor=monitor,
        api=create_api_app(
            sessionmaker,
            bot,
            cipher,
            # An "api" process runs no worker: it is not its health to report, and what it
            # accepts the "all" process's worker hears of (storage.commit_watch) or polls for.
            None if api_only else worker,
            clock=clock,
            deletion_stats=deleter.stats,
            scheduler=scheduler,
            submitter=submitter,
            channel_statuses=monitor.statuses,
            contact_setup=contact_setup,
            token_cache=token_cache,
        ),
        heartbeat=Heartbeat(sessionmaker, worker.state, clock),
    )


def commit_watch_for(
    url: str, engine: AsyncEngine, on_commit: Callable[[], None], stop: asyncio.Event
) -> Coroutine[Any, Any, None] | None:
    """How this database tells of other processes' commits, if it can."""
    if is_postgresql(url):
        return listen_for_commits(engine, on_commit, stop)
    database_file = sqlite_file(url)
    if database_file is not None:
        return watch_commits(database_file, on_commit, stop)
    return None  # in memory: no other process shares it


async def run_gateway(
    config: GatewayConfig,
    stop: asyncio.Event,
    on_ready: Callable[[], None] | None = None,
    *,
    clock: Callable[[], datetime] = utcnow,
) -> None:
    """Serve the HTTP API, deliver and poll Telegram until `stop` is set; then shut down.
    In the "api" role, only the HTTP API (and the channel checks its /channels reports).

    `on_ready` runs once the HTTP API is accepting connections.
    """
    everything = config.role == "all"
    gw = build_gateway(config, clock)
    runner = web.AppRunner(gw.api, access_log=None)
    await runner.setup()
    tasks: list[asyncio.Task[None]] = []
    watcher: asyncio.Task[None] | None = None
    beating = False
    gw.scheduler.start()
    try:
        site = web.TCPSite(
            runner, config.http_host, config.http_port, reuse_port=config.reuse_port or None
        )
        await site.start()
        log.info("HTTP API listening on http://%s:%s", config.http_host, config.http_port)
        # Work that came due while the gateway was down (held messages, deletions, expired
        # records) runs now; the rest is scheduled from the database.
        for due_work in (gw.releaser, gw.deleter, gw.purger) if everything else ():
            await due_work.start()
        gw.scheduler.add_job(
            gw.monitor.check_all,
            "interval",
            seconds=CHECK_INTERVAL_SECONDS,
            coalesce=True,
            next_run_time=datetime.now(UTC),  # the first check at once
        )
        if everything:
            # What `serve --role api` processes commit wakes the worker at once.
            watch = commit_watch_for(config.database_url, gw.engine, gw.worker.notify, stop)
            if watch is not None:
                watcher = asyncio.create_task(watch, name="commit-watch")
            # One process per bot token polls Telegram: a second getUpdates is refused.
            tasks = [
                asyncio.create_task(gw.worker.run(stop), name="delivery"),
                asyncio.create_task(
                    gw.dispatcher.start_polling(
                        gw.bot, handle_signals=False, close_bot_session=False
                    ),
                    name="polling",
                ),
            ]
            # For the health of `serve --role api` processes (gateway.worker_heartbeat). Added
            # after the worker's task, whose first step (it marks itself running) so comes first.
            gw.scheduler.add_job(
                gw.heartbeat.beat,
                "interval",
                seconds=BEAT_SECONDS,
                coalesce=True,
                misfire_grace_time=None,  # a late beat still beats (a busy loop is not down)
                next_run_time=datetime.now(UTC),
            )
            beating = True
        # Everything built so far (modules, schemas, the app) lives as long as the process:
        # moved out of the collector's sight, it no longer makes each full collection longer,
        # and those pauses stall the paced sends (see README, Benchmarks and performance).
        # Garbage is collected first so that none of it is kept for good.
        gc.collect()
        gc.freeze()
        if on_ready is not None:
            on_ready()
        stopper = asyncio.create_task(stop.wait(), name="stop")
        done, _ = await asyncio.wait({*tasks, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stop.set()
        with contextlib.suppress(RuntimeError):  # polling may not have started yet
            await gw.dispatcher.stop_polling()
        await asyncio.gather(*tasks, stopper, return_exceptions=True)
        for task in done - {stopper}:
            crashed = task.exception()
            if crashed is not None:
                raise crashed
    finally:
        for task in tasks:
            task.cancel()
        if watcher is not None:  # not one of `tasks`: its end does not stop the gateway
            # Told by `stop`, it ends by itself (a PostgreSQL listener hands its connection
            # back clean); cancelled only if it does not within a moment.
            stop.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(watcher), WATCH_STOP_SECONDS)
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        gw.scheduler.shutdown(wait=False)
        if beating:  # the worker has stopped: say so now (a database that hangs, not long)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(LAST_BEAT_SECONDS):
                    await gw.heartbeat.beat(stopped=True)
        await runner.cleanup()
        await gw.channels.close()
        await gw.bot.session.close()
        await gw.engine.dispose()
