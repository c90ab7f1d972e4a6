"""`libral-gateway sandbox`: the sandbox Bot API server and the gateway wired to it, in one loop.

Part of the composition root: the sandbox package knows nothing of the gateway; this module
starts both and points the gateway's Bot at the sandbox instead of api.telegram.org.
The sandbox's world lives in memory, so the gateway gets a database of its own that starts
empty on every run: rows about sandbox users must not outlive the users.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path
from typing import TextIO

from aiohttp import web

from gateway.content_cipher import load_or_create_key_file
from gateway.runtime import GatewayConfig, run_gateway
from gateway.sandbox_demo import run_demo
from gateway.sandbox_standins import stand_ins
from gateway.settings import Settings, telegram_rates
from sandbox.server import TokenMaskingAccessLogger, create_sandbox_app
from sandbox.state import DEFAULT_BOT_TOKEN
from storage import migrate

SANDBOX_DIR = Path("var/sandbox")


def banner(
    bot_api_url: str,
    api_url: str,
    token: str,
    *,
    default_token: bool,
    stand_in_lines: list[str] | None = None,
) -> str:
    token_line = (
        f"  bot token       {token}  (the sandbox default; set LIBRAL_BOT_TOKEN to change)"
        if default_token
        else "  bot token       from LIBRAL_BOT_TOKEN"
    )
    return "\n".join(
        [
            "Libral Gateway sandbox is running (no Telegram account, no internet needed).",
            f"  Bot API server  {bot_api_url}/bot<token>/<method>",
            f"  control API     {bot_api_url}/sandbox/  (act as Telegram users)",
            f"  gateway API     {api_url}/api/v1/communication/",
            f"  database        {SANDBOX_DIR}/gateway.sqlite3 (fresh on every run)",
            token_line,
            *(stand_in_lines or []),
            "",
            "Try first:",
            f"  curl -s {api_url}/api/v1/communication/health",
            f"  curl -s -X POST {bot_api_url}/sandbox/users -H 'Content-Type: application/json'"
            ' -d \'{"first_name": "Ada"}\'',
            "  or run `libral-gateway sandbox --demo` for a guided tour.",
            "",
            "Press Ctrl-C to stop.",
        ]
    )


def _fresh_database() -> str:
    SANDBOX_DIR.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        (SANDBOX_DIR / f"gateway.sqlite3{suffix}").unlink(missing_ok=True)
    return f"sqlite+aiosqlite:///{SANDBOX_DIR / 'gateway.sqlite3'}"


async def run_sandbox_with_gateway(
    settings: Settings,
    host: str,
    bot_api_port: int,
    stop: asyncio.Event,
    *,
    demo: bool = False,
    out: TextIO = sys.stdout,
) -> None:
    token = settings.bot_token.get_secret_value() if settings.bot_token else DEFAULT_BOT_TOKEN
    database_url = _fresh_database()
    # Alembic's async env runs its own event loop: give it a thread of its own.
    await asyncio.to_thread(migrate.upgrade, database_url)
    # Email, webhook, SMS and push stand-ins, so every channel works without the internet.
    stack_of_stand_ins = contextlib.AsyncExitStack()
    runner = web.AppRunner(
        create_sandbox_app(token=token),
        shutdown_timeout=2.0,
        access_log_class=TokenMaskingAccessLogger,  # request paths carry the bot token
    )
    await runner.setup()
    try:
        others = await stack_of_stand_ins.enter_async_context(stand_ins(host))
        site = web.TCPSite(runner, host, bot_api_port)
        await site.start()
        bound = runner.addresses[0][1] if runner.addresses else bot_api_port
        bot_api_url = f"http://{host}:{bound}"
        config = GatewayConfig(
            bot_token=token,
            telegram_api_url=bot_api_url,
            database_url=database_url,
            http_host=settings.http_host,
            http_port=settings.http_port,
            content_key=load_or_create_key_file(SANDBOX_DIR / "content.key"),
            public_url=None,
            channels=others.channels,
            # The sandbox enforces Telegram's limits too: pace to the same settings as serve.
            telegram_rates=telegram_rates(settings),
            telegram_request_timeout=settings.telegram_request_timeout,
        )
        if demo:
            await _run_demo(config, bot_api_url, out)
            return
        text = banner(
            bot_api_url,
            config.api_base_url,
            token,
            default_token=settings.bot_token is None,
            stand_in_lines=others.banner_lines(),
        )
        await run_gateway(config, stop, on_ready=lambda: print(text, file=out, flush=True))
    finally:
        await stack_of_stand_ins.aclose()
        await runner.cleanup()


async def _run_demo(config: GatewayConfig, bot_api_url: str, out: TextIO) -> None:
    stop, ready = asyncio.Event(), asyncio.Event()
    gateway = asyncio.create_task(run_gateway(config, stop, on_ready=ready.set))
    try:
        ready_or_crash = asyncio.create_task(ready.wait())
        await asyncio.wait({gateway, ready_or_crash}, return_when=asyncio.FIRST_COMPLETED)
        ready_or_crash.cancel()
        if gateway.done():
            gateway.result()  # it crashed on start: surface why
        await run_demo(bot_api_url, config.api_base_url, out)
    finally:
        stop.set()
        await gateway
