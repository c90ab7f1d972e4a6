"""Build and run the sandbox Bot API server (used by tests and `libral-gateway sandbox`)."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest

from sandbox.botapi_routes import add_bot_api_routes
from sandbox.clock import Clock, SandboxClock
from sandbox.control import STATE_KEY, control_app
from sandbox.state import DEFAULT_BOT_TOKEN, SandboxState

log = logging.getLogger("sandbox.server")

MAX_REQUEST_BYTES = 52 * 1024 * 1024  # a 50 MB document plus multipart overhead
_TOKEN_IN_PATH = re.compile(r"/bot[^/]+/")


class TokenMaskingAccessLogger(AbstractAccessLogger):
    """Access log lines with the bot token masked and no query string (it may hold text)."""

    def log(self, request: BaseRequest, response: web.StreamResponse, time: float) -> None:
        path = _TOKEN_IN_PATH.sub("/bot<token>/", request.path)
        self.logger.info("%s %s -> %d (%.3fs)", request.method, path, response.status, time)

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)


def create_sandbox_app(
    *, token: str = DEFAULT_BOT_TOKEN, clock: Clock | None = None
) -> web.Application:
    """A sandbox serving one bot (`token`); `clock` is a monotonic-seconds callable for tests."""
    state = SandboxState.create(token, SandboxClock(clock))
    app = web.Application(client_max_size=MAX_REQUEST_BYTES)
    app[STATE_KEY] = state
    add_bot_api_routes(app)
    app.add_subapp("/sandbox/", control_app())

    async def release_long_polls(app: web.Application) -> None:
        app[STATE_KEY].updates.close()

    app.on_shutdown.append(release_long_polls)
    return app


def sandbox_state(app: web.Application) -> SandboxState:
    """The state behind an app from `create_sandbox_app` (for in-process inspection)."""
    return app[STATE_KEY]


async def run_sandbox(
    host: str,
    port: int,
    token: str = DEFAULT_BOT_TOKEN,
    *,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the sandbox on host:port until cancelled; `on_ready` gets the base URL once bound."""
    runner = web.AppRunner(
        create_sandbox_app(token=token),
        shutdown_timeout=2.0,
        access_log_class=TokenMaskingAccessLogger,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        addresses = runner.addresses  # the bound socket tells the real port when port=0
        bound_port = int(addresses[0][1]) if addresses else port
        url = f"http://{host}:{bound_port}"
        log.info("sandbox Bot API listening on %s", url)
        if on_ready is not None:
            on_ready(url)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
