"""Benchmark 2 (flood control off): throughput of the whole pipeline, from POST /send to the
sandbox recording the sendMessage, with pacing lifted (LIBRAL_TELEGRAM_*_RATE=0 equivalent).

The gateway and its sandbox run in a process of their own (bench/_servers.py); this process
posts N messages keeping K in flight, round robin over P people (each with a linked
personal-log group), then waits until the sandbox has recorded N sendMessage calls into their
groups, and reports both rates. One person's messages are delivered one after another, in
order, so with one person the delivered rate is the latency of one delivery; with many, the
worker's capacity (it serves a few chats at once). With flood control and pacing on:
bench/pipeline_paced.py.

Usage: .venv/bin/python bench/pipeline.py [messages, default 1000] [in flight, default 32]
       [people, default 20] [--separate-sandbox] [--api N [--api-only]]

--separate-sandbox runs the sandbox in a process of its own (bench/_servers.py `sandbox`)
instead of in the gateway's. --api N runs N `serve --role api` processes beside the gateway,
sharing its port (README, Running several processes): they take their share of the requests,
and the delivering process has more of its CPU for delivering; with --api-only, on a port of
their own, where every request goes, so that the gateway's process only delivers. The CPU
per message counts them all.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import sys
import time

import aiohttp
from _servers import (  # sibling module: bench/ is on sys.path
    SEND,
    NewCalls,
    Started,
    launch_with_sandbox,
    process_cpu_seconds,
    sends,
    with_api_processes,
)

from sandbox.client import SandboxClient

POLL = 0.5  # seconds between looks at the sandbox's calls
PERIOD = 10.0  # seconds of each rate printed as the run goes on


class Sends:
    """Successful sendMessage calls into the people's groups so far, counted from the
    sandbox's record of calls as it grows."""

    def __init__(self, world: SandboxClient, groups: list[int]) -> None:
        self._calls = NewCalls(world)
        self._groups = set(groups)
        self.count = 0

    async def look(self) -> int:
        self.count += sum(
            1
            for call in sends(await self._calls.read())
            if call.method == "sendMessage" and call.params.get("chat_id") in self._groups
        )
        return self.count


async def run(
    total: int, in_flight: int, started: Started, api: list[Started], *, api_only: bool
) -> None:
    people = started.people
    url = api[0].url if api_only else started.url
    groups = [group for _token, group in people]
    counter = iter(range(total))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=in_flight)) as http:
        delivered_so_far = Sends(SandboxClient(started.sandbox, http), groups)
        before = await delivered_so_far.look()

        async def worker() -> None:
            for n in counter:
                token, _group = people[n % len(people)]
                body = {"category": "system", "content": {"text": f"pipeline {n}"}}
                headers = {"Authorization": f"Bearer {token}"}
                async with http.post(url + SEND, json=body, headers=headers) as resp:
                    if resp.status != 202:
                        raise RuntimeError(f"answer {resp.status}: {await resp.text()}")

        # (seconds since the first POST, deliveries so far): the rate as the run goes on.
        seen: list[tuple[float, int]] = []

        async def watch() -> None:
            while (count := await delivered_so_far.look() - before) < total:
                seen.append((time.perf_counter() - started_at, count))
                await asyncio.sleep(POLL)  # another process's state: nothing to await

        cpu_before = _cpu(started, api)
        started_at = time.perf_counter()
        watching = asyncio.create_task(watch())
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        accepted = time.perf_counter() - started_at
        async with asyncio.timeout(600):
            await watching
        delivered = time.perf_counter() - started_at
        seen.append((delivered, total))
        cpu_after = _cpu(started, api)
        all_cpu, api_cpu, sandbox_cpu = (a - b for a, b in zip(cpu_after, cpu_before, strict=True))
        gateway_cpu = all_cpu + api_cpu
    print(
        f"{total} messages to {len(people)} {'person' if len(people) == 1 else 'people'}, "
        f"{in_flight} in flight, "
        f"{len(api)} api process{'' if len(api) == 1 else 'es'} beside the gateway"
        f"{' taking every request' if api_only else ''}, "
        f"{os.cpu_count()} CPUs, flood control off"
    )
    print(f"accepted  {total / accepted:8.0f} msg/s  ({accepted:.1f} s)")
    print(f"delivered {total / delivered:8.0f} msg/s  ({delivered:.1f} s to the last one)")
    print(f"delivered in each {PERIOD:.0f} s: " + " ".join(str(n) for n in _per_period(seen)))
    # CPU time per message is steadier than the rates on a shared machine, and says where the
    # ceiling is: one process cannot use more than one CPU second per second.
    # With api processes, how that splits: what accepting cost, and what delivering did.
    split = (
        f" (the `all` process {all_cpu / total * 1000:.2f}, api {api_cpu / total * 1000:.2f})"
        if api
        else ""
    )
    if started.sandbox_pid:
        print(
            f"CPU per message: gateway {gateway_cpu / total * 1000:.2f} ms{split}, "
            f"sandbox {sandbox_cpu / total * 1000:.2f} ms"
        )
    else:
        print(f"CPU per message: gateway and sandbox {gateway_cpu / total * 1000:.2f} ms{split}")
    print("reproduce: .venv/bin/python bench/pipeline.py " + " ".join(sys.argv[1:]))


def _per_period(seen: list[tuple[float, int]]) -> list[int]:
    """Deliveries in each PERIOD from the first POST (the last one maybe shorter), from the
    (time, count so far) looks of the run, in time order."""
    ends: list[int] = []  # the count at the end of each period: its last look's
    last = 0
    for at, count in seen:
        while at >= PERIOD * (len(ends) + 1):
            ends.append(last)
        last = count
    ends.append(last)
    return [after - before for before, after in itertools.pairwise([0, *ends])]


def _cpu(started: Started, api: list[Started]) -> tuple[float, float, float]:
    """CPU seconds used so far by the gateway's `all` process, by its api processes together
    and by the sandbox's (0 if none)."""
    sandbox = process_cpu_seconds(started.sandbox_pid) if started.sandbox_pid else 0.0
    return started.cpu_seconds(), sum(p.cpu_seconds() for p in api), sandbox


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("messages", type=int, nargs="?", default=1000)
    parser.add_argument("in_flight", type=int, nargs="?", default=32)
    parser.add_argument("people", type=int, nargs="?", default=20)
    parser.add_argument(
        "--separate-sandbox",
        action="store_true",
        help="run the sandbox in a process of its own (default: in the gateway's)",
    )
    parser.add_argument(
        "--api",
        type=int,
        default=0,
        metavar="N",
        help="`serve --role api` processes beside the gateway, sharing its port (default 0)",
    )
    parser.add_argument(
        "--api-only",
        action="store_true",
        help="the api processes listen on a port of their own and take every request",
    )
    args = parser.parse_args()
    if args.api < 0:
        parser.error("--api must be 0 or more")
    if args.api_only and not args.api:
        parser.error("--api-only needs --api 1 or more")
    with (
        launch_with_sandbox("gateway", args.people, separate=args.separate_sandbox) as started,
        with_api_processes(started, args.api, own_port=args.api_only) as api,
    ):
        asyncio.run(run(args.messages, args.in_flight, started, api, api_only=args.api_only))


if __name__ == "__main__":
    main()
