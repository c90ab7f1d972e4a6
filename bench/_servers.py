"""Servers for the benchmarks, each run in a process of its own (so the load generator does not
share its CPU): `gateway` (sandbox Bot API server, flood control off, plus the whole gateway
with one person linked; prints `TOKEN <token>` and `READY <api url>`), `bare` (an aiohttp app
that parses the same JSON and answers 202; prints `READY <url>`).

Usage (by the bench scripts): python bench/_servers.py gateway|bare
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import tempfile
from pathlib import Path

import aiohttp
from aiohttp import web

SEND = "/api/v1/communication/send"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _until_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def bare() -> None:
    async def send(request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        if not isinstance(body, dict):
            return web.json_response({"error": "body must be an object"}, status=422)
        return web.json_response({"message_id": "x", "status": "queued"}, status=202)

    app = web.Application()
    app.router.add_post(SEND, send)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print(f"READY http://127.0.0.1:{port}", flush=True)
    await _until_signal()
    await runner.cleanup()


async def gateway() -> None:
    from gateway.delivery.pacing import TelegramRates
    from gateway.runtime import GatewayConfig, run_gateway
    from gateway.sandbox_demo import ADMIN_RIGHTS, token_from
    from sandbox.client import SandboxClient
    from sandbox.server import create_sandbox_app
    from sandbox.state import DEFAULT_BOT_TOKEN
    from storage import migrate

    runner = web.AppRunner(create_sandbox_app(), access_log=None)
    await runner.setup()
    sandbox_port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", sandbox_port).start()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    with tempfile.TemporaryDirectory() as tmp:
        db = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.sqlite3'}"
        await asyncio.to_thread(migrate.upgrade, db)
        port = _free_port()
        config = GatewayConfig(
            DEFAULT_BOT_TOKEN,
            sandbox_url,
            db,
            "127.0.0.1",
            port,
            b"b" * 32,
            telegram_rates=TelegramRates.unlimited(),  # flood control is off in this sandbox
        )
        stop, ready = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(run_gateway(config, stop, on_ready=ready.set))
        await ready.wait()
        async with aiohttp.ClientSession() as http:
            world = SandboxClient(sandbox_url, http)
            await world.set_flood(enabled=False)
            user = await world.create_user("Bench")
            await world.send_message(user, user, "/start")
            await world.wait_for_bot_message(user)
            group = await world.create_group("bench", owner_id=user, is_forum=True)
            await world.set_bot_membership(
                group, by_id=user, status="administrator", rights=ADMIN_RIGHTS
            )
            await world.wait_for_chat(group, lambda c: len(c.topics) == 5, within=30)
            await world.send_message(user, user, "/token")
            reply = await world.wait_for_bot_message(user, lambda m: "lgp_" in (m.text or ""))
            print(f"TOKEN {token_from(reply)}", flush=True)
            print(f"SANDBOX {sandbox_url} {group}", flush=True)
        print(f"READY http://127.0.0.1:{port}", flush=True)
        await _until_signal()
        stop.set()
        await task
    await runner.cleanup()


if __name__ == "__main__":
    profile_to = os.environ.get("BENCH_PROFILE")  # where to write a cProfile of the server
    if profile_to:
        import cProfile

        with cProfile.Profile() as profiler:
            asyncio.run({"bare": bare, "gateway": gateway}[sys.argv[1]]())
        profiler.dump_stats(profile_to)
    else:
        asyncio.run({"bare": bare, "gateway": gateway}[sys.argv[1]]())
