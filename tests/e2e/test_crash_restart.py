"""Accepted means durable: a message answered 202 is delivered even if the gateway process is
killed (SIGKILL, no shutdown) before delivering it and started again."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from sandbox.client import SandboxClient
from sandbox.server import create_sandbox_app
from sandbox.state import DEFAULT_BOT_TOKEN
from tests.e2e.conftest import Running, free_port
from tests.waiting import eventually

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]


class GatewayProcess:
    """`libral-gateway serve` in a child process, pointed at the test's sandbox."""

    def __init__(self, tmp_path: Path, sandbox_url: str) -> None:
        self.port = free_port()
        self.db = tmp_path / "gw.sqlite3"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("LIBRAL_")}
        self.env.update(
            LIBRAL_BOT_TOKEN=DEFAULT_BOT_TOKEN,
            LIBRAL_TELEGRAM_API_URL=sandbox_url,
            LIBRAL_DATABASE_URL=f"sqlite+aiosqlite:///{self.db}",
            LIBRAL_HTTP_PORT=str(self.port),
            LIBRAL_CONTENT_KEY_FILE=str(tmp_path / "content.key"),
        )
        self.cwd = tmp_path
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, http: aiohttp.ClientSession) -> None:
        self.proc = proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway.cli",
            "serve",
            env=self.env,
            cwd=self.cwd,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )

        async def healthy() -> bool:
            assert proc.returncode is None, "gateway exited during start-up"
            try:
                async with http.get(f"{self.url}/api/v1/communication/health") as resp:
                    return resp.status == 200
            except aiohttp.ClientConnectionError:
                return False

        await eventually(healthy, within=60, what="the gateway to answer health with 200")

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                async with asyncio.timeout(20):
                    await self.proc.wait()
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
            assert self.proc.returncode == 0

    def query(self, sql: str, *args: object) -> list[tuple[object, ...]]:
        with sqlite3.connect(self.db) as conn:
            return conn.execute(sql, args).fetchall()


@pytest.fixture
async def world(aiohttp_server: ServerFactory) -> AsyncIterator[tuple[str, aiohttp.ClientSession]]:
    sandbox = await aiohttp_server(create_sandbox_app())
    async with aiohttp.ClientSession() as http:
        yield str(sandbox.make_url("")).rstrip("/"), http


async def test_message_survives_kill_and_restart(
    world: tuple[str, aiohttp.ClientSession], tmp_path: Path
) -> None:
    sandbox_url, http = world
    control = SandboxClient(sandbox_url, http)
    gateway = GatewayProcess(tmp_path, sandbox_url)
    await gateway.start(http)
    try:
        running = Running(control, http, gateway.url, f"sqlite+aiosqlite:///{gateway.db}")
        _, group, token = await running.person_with_log()
        # Telegram refuses sends for now (429, retry after 5 s): the message stays queued.
        await control.add_fault(
            "sendMessage", error_code=429, description="Too Many Requests", retry_after=5
        )
        async with http.post(
            f"{gateway.url}/api/v1/communication/send",
            json={"category": "system", "content": {"text": "disk almost full"}},
            headers={"Authorization": f"Bearer {token}"},
        ) as resp:
            assert resp.status == 202
            message_id = (await resp.json())["message_id"]
        # Kill it right after the first refused attempt was recorded, while the row is queued.
        await eventually(
            lambda: bool(
                gateway.query(
                    "SELECT 1 FROM messages m JOIN delivery_attempts a ON a.message_id = m.id "
                    "WHERE m.id = ? AND m.status = 'queued' AND a.outcome = 'retry'",
                    message_id,
                )
            ),
            within=20,
            what="the refused attempt to be recorded",
        )
        await gateway.kill()
        assert not [
            m for m in (await control.get_chat(group)).bot_messages() if "disk" in (m.text or "")
        ]
        await control.clear_faults()

        await gateway.start(http)
        delivered = await control.wait_for_bot_message(
            group, lambda m: "disk almost full" in (m.text or ""), within=30
        )
        assert delivered.text == "disk almost full\n\n#system"
        await eventually(
            lambda: (
                gateway.query("SELECT status FROM messages WHERE id = ?", message_id)
                == [("delivered",)]
            ),
            within=20,
            what="the delivery to be committed",
        )
        copies = [
            m for m in (await control.get_chat(group)).bot_messages() if m.text == delivered.text
        ]
        assert len(copies) == 1
    finally:
        await gateway.stop()
