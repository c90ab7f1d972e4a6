"""Benchmark 5 (flood control on): does a flood into one group hold up another person?

The issue asks that work for other chats keeps flowing while one chat waits. Two people each
link a personal-log group (bench/_servers.py `paced 2`, with `--api` `serve --role api`
processes beside it sharing its port, one by default: the two-process deployment). This process
floods person A with N messages as fast as the gateway takes them (the lean load generator,
K in flight), and meanwhile sends person B one message every `--every` seconds (4 by default:
inside B's own group's 20 a minute, so only the flood can delay them). It then waits until
every one of B's messages shows in B's group (or `--timeout` seconds after the flood ended).

Printed: the flood's rate, and the latency of B's messages from their POST to the sandbox
recording the sendMessage that carried them (p50 and the longest), and how many never showed.
A's own messages are not waited for: its group takes 20 messages a minute, so a flood of
thousands a second takes minutes to show whatever the gateway does (folded into digests).

Usage: .venv/bin/python bench/flood_fairness.py [messages, default 100000] [--in-flight 256]
       [--every 4] [--api 1] [--timeout 60]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import time

import _load
import aiohttp
from _servers import (
    SEND,
    NewCalls,
    Started,
    launch,
    percentile,
    sends,
    wait_until,
    with_api_processes,
)

from sandbox.client import SandboxClient

PROBE = re.compile(r"probe-(\d+)\b")


async def run(args: argparse.Namespace, started: Started) -> None:
    (token_a, _group_a), (token_b, group_b) = started.people[:2]
    posted: dict[int, float] = {}  # probe number -> when its POST began (time.time())
    flooding = asyncio.Event()
    async with aiohttp.ClientSession() as http:
        world = SandboxClient(started.sandbox, http)
        headers = {"Authorization": f"Bearer {token_b}"}

        async def probe() -> None:
            while flooding.is_set():
                n = len(posted)
                body = {"category": "system", "content": {"text": f"probe-{n}"}}
                posted[n] = time.time()
                async with http.post(started.url + SEND, json=body, headers=headers) as resp:
                    if resp.status != 202:
                        raise RuntimeError(f"answer {resp.status}: {await resp.text()}")
                await asyncio.sleep(args.every)  # the probes' own schedule

        bodies = (
            b'{"category": "system", "content": {"text": "flood %d"}}' % n
            for n in range(args.messages)
        )
        flooding.set()
        prober = asyncio.create_task(probe())
        elapsed, _ = await _load.run(started.url, SEND, token_a, bodies, args.in_flight)
        flooding.clear()
        await prober

        shown: dict[int, float] = {}
        calls = NewCalls(world)

        async def all_shown() -> bool:
            for call in sends(await calls.read(), group_b):
                for number in PROBE.findall(str(call.params.get("text", ""))):
                    shown.setdefault(int(number), call.time)
            return len(shown) >= len(posted)

        await wait_until(world, all_shown, within=args.timeout)

    latencies = [shown[n] - posted[n] for n in posted if n in shown]
    print(
        f"flood of {args.messages} messages into one person's group: {args.messages / elapsed:.0f}"
        f" accepted a second ({args.in_flight} in flight, {elapsed:.1f} s), {args.api} api "
        f"process(es) beside the all one, {os.cpu_count()} CPUs, SQLite (WAL); sandbox flood "
        f"control on, the gateway pacing to the same"
    )
    if latencies:
        print(
            f"another person's messages, one every {args.every:g} s meanwhile: {len(posted)} "
            f"sent, POST to sendMessage p50 {percentile(latencies, 0.5) * 1000:.0f} ms, longest "
            f"{max(latencies) * 1000:.0f} ms; never shown within {args.timeout:g} s after the "
            f"flood: {len(posted) - len(latencies)}"
        )
    else:
        print(f"another person's messages: {len(posted)} sent, none shown")
    print("reproduce: .venv/bin/python bench/flood_fairness.py " + " ".join(sys.argv[1:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("messages", type=int, nargs="?", default=100_000)
    parser.add_argument("--in-flight", type=int, default=256, help="flood POSTs in flight")
    parser.add_argument("--every", type=float, default=4.0, help="seconds between B's messages")
    parser.add_argument("--api", type=int, default=1, help="serve --role api processes")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    with launch("paced", "2") as started, with_api_processes(started, args.api):
        asyncio.run(run(args, started))


if __name__ == "__main__":
    main()
