"""Benchmark: POST /send acceptance latency and end-to-end delivery latency into the sandbox.

Runs the real gateway (HTTP API, bot, delivery worker, SQLite in a temp dir) against the
in-process sandbox Bot API server on loopback, links one person's forum group, then sends N
messages sequentially and reports percentiles of:
  - accept: POST /send until the 202 (the message is committed),
  - deliver: POST /send until the message shows in the sandbox group (via the control API).
Usage: .venv/bin/python bench/send_latency.py [N]   (default 200)
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Callable

import aiohttp
from _servers import sandbox_and_gateway  # the sibling module (bench/ is on sys.path when run)

from gateway.delivery.pacing import TelegramRates
from gateway.sandbox_demo import ADMIN_RIGHTS, token_from
from sandbox.client import MessageView, SandboxClient


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def _starts_with(prefix: str) -> Callable[[MessageView], bool]:
    return lambda m: (m.text or "").startswith(prefix)


async def main(n: int) -> None:
    # Latency, not pacing, is measured here.
    async with sandbox_and_gateway(TelegramRates.unlimited()) as (sandbox_url, base):
        api = f"{base}/api/v1/communication/send"
        async with aiohttp.ClientSession() as http:
            world = SandboxClient(sandbox_url, http)
            user = await world.create_user("Bench")
            await world.send_message(user, user, "/start")
            await world.wait_for_bot_message(user)
            group = await world.create_group("bench", owner_id=user, is_forum=True)
            await world.set_bot_membership(
                group, by_id=user, status="administrator", rights=ADMIN_RIGHTS
            )
            await world.wait_for_chat(group, lambda c: len(c.topics) == 5, within=10)
            await world.send_message(user, user, "/token")
            reply = await world.wait_for_bot_message(user, lambda m: "lgp_" in (m.text or ""))
            token = token_from(reply)
            assert token is not None
            headers = {"Authorization": f"Bearer {token}"}
            accept, deliver = [], []
            for i in range(n):
                marker = f"bench message {i}"
                body = {"category": "system", "content": {"text": marker}, "hashtags": ["bench"]}
                started = time.perf_counter()
                async with http.post(api, json=body, headers=headers) as resp:
                    assert resp.status == 202, await resp.text()
                accept.append(time.perf_counter() - started)
                await world.wait_for_bot_message(group, _starts_with(marker + "\n"))
                deliver.append(time.perf_counter() - started)
    print(f"messages: {n} (sequential, SQLite, loopback sandbox)")
    for name, values in (("accept (202)", accept), ("deliver (in topic)", deliver)):
        print(
            f"{name:20s} p50 {_pct(values, 0.5):7.1f} ms  p95 {_pct(values, 0.95):7.1f} ms  "
            f"p99 {_pct(values, 0.99):7.1f} ms  mean {statistics.mean(values) * 1000:7.1f} ms"
        )


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200))
