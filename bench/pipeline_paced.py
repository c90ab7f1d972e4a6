"""Benchmark 3 (flood control on): does the gateway use the bot's whole global budget without
tripping Telegram's limits?

The sandbox enforces Telegram's default limits (30 messages a second for the bot, 20 a minute
per group, 1 a second per private chat; 429 with retry_after beyond them) and the gateway paces
to the same limits. PEOPLE people each have a linked personal-log group. The gateway and
the sandbox run in a process of their own (bench/_servers.py `paced`; with --separate-sandbox,
the sandbox in a third one, `sandbox`: on 2 CPUs this adds scheduling jitter). This process
offers RATE messages a second (default: the global limit) for SECONDS seconds on a fixed
schedule (open loop), round robin over the people, so each group gets far less than its own
budget and the global limit is the one that binds.

The sandbox's call log is the truth for every figure: the sendMessage rate over the steady part
(from WARMUP seconds after the first POST to the last POST) as a share of the global limit, the
429s it answered, the most messages any group got in any 60 seconds
and, per message, the time from its POST to the sandbox recording its sendMessage (found by a
unique marker in the text).

Usage: .venv/bin/python bench/pipeline_paced.py [--seconds 60] [--people 120] [--rate R]
       [--warmup 5] [--drain 120] [--separate-sandbox]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import time

import aiohttp
from _servers import (
    SEND,
    Started,
    launch_with_sandbox,
    most_in_window,
    percentile,
    sends,
    wait_until,
)

from gateway.delivery.pacing import GLOBAL_WINDOW, SHORT_MARGIN, limit_rate
from sandbox.client import CallView, SandboxClient

MARKER = re.compile(r"paced-(\d{6})")


def _first_sent(calls: list[CallView]) -> dict[int, float]:
    """Message number -> when the sandbox recorded the first send carrying its marker."""
    seen: dict[int, float] = {}
    for call in sends(calls):
        for number in MARKER.findall(str(call.params.get("text", ""))):
            seen.setdefault(int(number), call.time)
    return seen


async def run(args: argparse.Namespace, started: Started) -> None:
    flood = started.flood
    global_limit = float(flood["global_per_second"])
    group_limit = int(flood["group_per_minute"])
    rate: float = args.rate or global_limit
    total = round(rate * float(args.seconds))
    people = started.people
    posted: dict[int, float] = {}  # message number -> Unix time its POST started
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as http:
        world = SandboxClient(started.sandbox, http)

        async def post(n: int) -> None:
            token, _group = people[n % len(people)]
            body = {"category": "system", "content": {"text": f"paced-{n:06d} steady load"}}
            headers = {"Authorization": f"Bearer {token}"}
            posted[n] = time.time()
            async with http.post(started.url + SEND, json=body, headers=headers) as resp:
                if resp.status != 202:
                    raise RuntimeError(f"answer {resp.status}: {await resp.text()}")

        posts = []
        began = loop.time()
        for n in range(total):
            ahead = began + n / rate - loop.time()
            if ahead > 0:
                await asyncio.sleep(ahead)  # the offered load's schedule, not a wait for a result
            posts.append(asyncio.create_task(post(n)))
        await asyncio.gather(*posts)
        first_post, last_post = min(posted.values()), max(posted.values())

        calls: list[CallView] = []

        async def all_sent() -> bool:
            nonlocal calls
            calls = await world.get_calls()
            return len(_first_sent(calls)) >= total

        everything = await wait_until(world, all_sent, within=args.drain)
        await all_sent()  # the final log, after the last check

    first_sent = _first_sent(calls)
    latencies = [first_sent[n] - posted[n] for n in first_sent if n in posted]
    sent = sends(calls)
    steady_from = first_post + args.warmup
    steady = [c for c in sent if steady_from <= c.time <= last_post]
    steady_rate = len(steady) / (last_post - steady_from)
    refused = [c for c in calls if c.status == 429]
    groups = {group for _token, group in people}
    # The sandbox counts from when flood control came on, after the setup (nothing is sent
    # between then and the first POST); each group got the bot's welcome before that.
    per_group = max(
        most_in_window(
            [c.time for c in sent if c.params.get("chat_id") == g and c.time >= first_post], 60.0
        )
        for g in groups
    )
    per_group_welcome = max(
        most_in_window([c.time for c in sent if c.params.get("chat_id") == g], 60.0) for g in groups
    )
    per_second = most_in_window([c.time for c in sent if c.time >= first_post], 1.0)
    paced_at = limit_rate(global_limit, GLOBAL_WINDOW, 1.0, SHORT_MARGIN)
    last = max(first_sent.values(), default=first_post)

    print(
        f"{len(people)} people (a linked group each), {total} messages offered at {rate:g}/s "
        f"for {args.seconds:g} s (POSTs took {last_post - first_post:.1f} s), "
        f"{os.cpu_count()} CPUs, SQLite (WAL)"
    )
    print(
        f"sandbox flood control on: {global_limit:g}/s for the bot, {group_limit}/min per group, "
        f"{flood['private_chat_per_second']}/s per private chat; the gateway paces to the same "
        f"(its global bucket refills at {paced_at:.2f}/s = {100 * paced_at / global_limit:.1f}%)"
    )
    print(
        f"sendMessage rate, steady part ({args.warmup:g} s after the first POST to the last "
        f"POST, {last_post - steady_from:.1f} s): {steady_rate:.2f}/s = "
        f"{100 * steady_rate / global_limit:.1f}% of the global limit (target >= 95%)"
    )
    tens = [
        sum(1 for c in sent if first_post + t <= c.time < first_post + t + 10)
        / min(10, last - first_post - t)
        for t in range(0, int(last - first_post), 10)
    ]
    print("sends/s in each 10 s from the first POST: " + " ".join(f"{r:.1f}" for r in tens))
    print(f"429 answers from the sandbox: {len(refused)} (target 0)")
    print(
        f"most messages to one group in any 60 s: {per_group} (limit {group_limit}; "
        f"{per_group_welcome} with the welcome the bot posted, unpaced, at setup); to the bot "
        f"in any 1 s: {per_second} (limit {global_limit:g})"
    )
    print(
        f"POST to sendMessage recorded: p50 {1000 * percentile(latencies, 0.5):.0f} ms, "
        f"p99 {1000 * percentile(latencies, 0.99):.0f} ms; delivered {len(first_sent)} of "
        f"{total}"
        + ("" if everything else f" (gave up {args.drain:g} s after the last POST)")
        + f", the last {last - first_post:.1f} s after the first POST"
    )
    print("reproduce: .venv/bin/python bench/pipeline_paced.py " + " ".join(sys.argv[1:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long load is offered")
    parser.add_argument("--people", type=int, default=120, help="people, one group each")
    parser.add_argument("--rate", type=float, default=0.0, help="messages a second offered")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds left out at start")
    parser.add_argument("--drain", type=float, default=120.0, help="seconds to wait at the end")
    parser.add_argument(
        "--separate-sandbox",
        action="store_true",
        help="run the sandbox in a process of its own (default: in the gateway's, as for the "
        "other benchmarks)",
    )
    args = parser.parse_args()
    with launch_with_sandbox("paced", args.people, separate=args.separate_sandbox) as gw:
        asyncio.run(run(args, gw))


if __name__ == "__main__":
    main()
