"""The composition root: builds settings-driven objects and runs them in one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.dispatcher import build_dispatcher
from gateway.api.app import create_api_app
from storage.engine import create_engine, create_sessionmaker

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GatewayConfig:
    """What the runtime needs, already validated (from Settings or from the sandbox command)."""

    bot_token: str
    telegram_api_url: str
    database_url: str
    http_host: str
    http_port: int


def build_bot(token: str, api_url: str) -> Bot:
    session = AiohttpSession(api=TelegramAPIServer.from_base(api_url))
    return Bot(token, session=session, default=DefaultBotProperties(parse_mode=ParseMode.HTML))


@dataclass
class Gateway:
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    bot: Bot
    dispatcher: Dispatcher
    api: web.Application


def build_gateway(config: GatewayConfig) -> Gateway:
    engine = create_engine(config.database_url)
    sessionmaker = create_sessionmaker(engine)
    bot = build_bot(config.bot_token, config.telegram_api_url)
    return Gateway(
        engine=engine,
        sessionmaker=sessionmaker,
        bot=bot,
        dispatcher=build_dispatcher(sessionmaker),
        api=create_api_app(sessionmaker, bot),
    )


async def run_gateway(
    config: GatewayConfig, stop: asyncio.Event, on_ready: Callable[[], None] | None = None
) -> None:
    """Serve the HTTP API and poll Telegram until `stop` is set; then shut down cleanly.

    `on_ready` runs once the HTTP API is accepting connections.
    """
    gw = build_gateway(config)
    runner = web.AppRunner(gw.api, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, config.http_host, config.http_port)
        await site.start()
        log.info("HTTP API listening on http://%s:%s", config.http_host, config.http_port)
        if on_ready is not None:
            on_ready()
        polling = asyncio.create_task(
            gw.dispatcher.start_polling(gw.bot, handle_signals=False, close_bot_session=False)
        )
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({polling, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if polling in done:
            polling.result()  # surfaces a crash of the poller
        with contextlib.suppress(RuntimeError):  # polling may not have started yet
            await gw.dispatcher.stop_polling()
        stopper.cancel()
        await asyncio.gather(polling, stopper, return_exceptions=True)
    finally:
        await runner.cleanup()
        await gw.bot.session.close()
        await gw.engine.dispose()
