"""run_sandbox serves until cancelled; its access log never shows the token."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest

from sandbox.server import run_sandbox
from sandbox.state import DEFAULT_BOT_TOKEN


async def test_run_sandbox_serves_until_cancelled(caplog: pytest.LogCaptureFixture) -> None:
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        run_sandbox("127.0.0.1", 0, DEFAULT_BOT_TOKEN, on_ready=ready.set_result)
    )
    with caplog.at_level(logging.INFO):
        async with asyncio.timeout(5):
            url = await ready
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{url}/bot{DEFAULT_BOT_TOKEN}/getMe?x=secret-text") as response,
        ):
            assert (await response.json())["ok"] is True
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "/bot<token>/getMe" in logged
    assert DEFAULT_BOT_TOKEN not in logged
    assert "secret-text" not in logged
