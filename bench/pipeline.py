"""Benchmark 2 (flood control off): throughput of the whole pipeline, from POST /send to the
sandbox recording the sendMessage, with pacing lifted (LIBRAL_TELEGRAM_*_RATE=0 equivalent).

The gateway and its sandbox run in a process of their own (bench/_servers.py); this process
posts N messages keeping K in flight, then waits until the sandbox has recorded N sendMessage
calls into the person's group, and reports both rates. With flood control and pacing on:
bench/pipeline_paced.py.

Usage: .venv/bin/python bench/pipeline.py [messages, default 1000] [in flight, default 32]
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

import aiohttp
from _servers import SEND, launch  # the sibling module (bench/ is on sys.path when run)


async def _sends(http: aiohttp.ClientSession, sandbox: str, group: int) -> int:
    async with http.get(f"{sandbox}/sandbox/chats/{group}") as resp:
        chat = await resp.json()
    return sum(1 for m in chat["messages"] if m.get("from", {}).get("is_bot"))


async def run(total: int, in_flight: int, url: str, token: str, sandbox: str, group: int) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    counter = iter(range(total))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=in_flight)) as http:
        before = await _sends(http, sandbox, group)

        async def worker() -> None:
            for n in counter:
                body = {"category": "system", "content": {"text": f"pipeline {n}"}}
                async with http.post(url + SEND, json=body, headers=headers) as resp:
                    if resp.status != 202:
                        raise RuntimeError(f"answer {resp.status}: {await resp.text()}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        accepted = time.perf_counter() - started
        async with asyncio.timeout(600):
            while await _sends(http, sandbox, group) - before < total:  # noqa: ASYNC110
                await asyncio.sleep(0.2)  # another process's state: nothing to await
        delivered = time.perf_counter() - started
    print(f"{total} messages, {in_flight} in flight, {os.cpu_count()} CPUs, flood control off")
    print(f"accepted  {total / accepted:8.0f} msg/s  ({accepted:.1f} s)")
    print(f"delivered {total / delivered:8.0f} msg/s  ({delivered:.1f} s to the last one)")
    print("reproduce: .venv/bin/python bench/pipeline.py " + " ".join(sys.argv[1:]))


def main() -> None:
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    in_flight = int(sys.argv[2]) if len(sys.argv) > 2 else 32
    with launch("gateway") as started:
        [(token, group)] = started.people
        asyncio.run(run(total, in_flight, started.url, token, started.sandbox, group))


if __name__ == "__main__":
    main()
