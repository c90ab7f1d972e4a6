"""`libral-gateway sandbox`: the sandbox Bot API server and the gateway wired to it, in one loop.

Part of the composition root: the sandbox package knows nothing of the gateway; this module
starts both and points the gateway's Bot at the sandbox instead of api.telegram.org.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import TextIO

from aiohttp import web

from gateway.runtime import GatewayConfig, run_gateway
from gateway.settings import Settings
from sandbox.server import TokenMaskingAccessLogger, create_sandbox_app
from sandbox.state import DEFAULT_BOT_TOKEN

ConfigFactory = Callable[[Settings, str, str], GatewayConfig]


def banner(bot_api_url: str, api_url: str, token: str, *, default_token: bool) -> str:
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
            token_line,
            "",
            "Try first:",
            f"  curl -s {api_url}/api/v1/communication/health",
            f"  curl -s -X POST {bot_api_url}/sandbox/users -H 'Content-Type: application/json'"
            ' -d \'{"first_name": "Ada"}\'',
            "",
            "Press Ctrl-C to stop.",
        ]
    )


async def run_sandbox_with_gateway(
    settings: Settings,
    host: str,
    bot_api_port: int,
    stop: asyncio.Event,
    make_config: ConfigFactory,
    *,
    out: TextIO = sys.stdout,
) -> None:
    token = settings.bot_token.get_secret_value() if settings.bot_token else DEFAULT_BOT_TOKEN
    runner = web.AppRunner(
        create_sandbox_app(token=token),
        shutdown_timeout=2.0,
        access_log_class=TokenMaskingAccessLogger,  # request paths carry the bot token
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, bot_api_port)
        await site.start()
        bound = runner.addresses[0][1] if runner.addresses else bot_api_port
        bot_api_url = f"http://{host}:{bound}"
        config = make_config(settings, token, bot_api_url)
        api_url = f"http://{config.http_host}:{config.http_port}"
        text = banner(bot_api_url, api_url, token, default_token=settings.bot_token is None)
        await run_gateway(config, stop, on_ready=lambda: print(text, file=out, flush=True))
    finally:
        await runner.cleanup()
