"""Benchmark 4 (flood control on): a burst of messages to ONE person's group.

Telegram lets a group have 20 messages a minute, so 1,000 messages sent one by one take 50
minutes. The sandbox enforces Telegram's default limits and the gateway paces to them
(bench/_servers.py `paced`, one person, in a process of its own). This process POSTs N messages
as fast as it can (K in flight), each with a unique marker (`burst-000123`) in its text, then
waits until every marker is visible in the group, or until TIMEOUT seconds after the first POST,
and prints what arrived.

The sandbox is the truth: how many Telegram messages the group got (sendMessage calls it
recorded for that chat since the first POST; edits are counted apart), and when each message's
content first showed (the recorded time of the first send or edit whose text holds its marker;
a message folded into a digest with others counts when the digest is sent). A message counts as
visible when its marker is in the group's live bot messages at the end: their texts are searched
joined in order, so it is found inside a digest, and across a split at 4,096 characters too.

Usage: .venv/bin/python bench/burst.py [messages, default 1000] [--in-flight 32]
       [--timeout 300]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import time

import aiohttp
from _servers import SEND, Started, launch, most_in_window, sends, wait_until

from sandbox.client import CallView, ChatView, SandboxClient

MARKER = re.compile(r"burst-(\d{6})")
TEXT_METHODS = frozenset({"sendMessage", "editMessageText"})


def text_of(n: int) -> str:
    """Message n's text: its marker and a little content."""
    return f"burst-{n:06d} disk on host nas-{n % 7} is {90 + n % 10}% full (burst benchmark)"


def visible(chat: ChatView) -> tuple[set[int], int, int]:
    """(numbers whose marker is in the chat's live bot messages, how many of those messages have
    their whole text there too, the longest text of those bot messages as Telegram counts it:
    UTF-16 code units of the text after parsing)."""
    shown = sorted(chat.bot_messages(), key=lambda m: m.message_id)
    texts = "".join(m.text or "" for m in shown)
    markers = {int(n) for n in MARKER.findall(texts)}
    longest = max((len((m.text or "").encode("utf-16-le")) // 2 for m in shown), default=0)
    return markers, sum(1 for n in markers if text_of(n) in texts), longest


def first_shown(calls: list[CallView], group: int, since: float) -> dict[int, float]:
    """Message number -> when the sandbox recorded the first send or edit showing its marker
    (the tail of the previous one is searched with it, for a marker split across messages)."""
    shown: dict[int, float] = {}
    tail = ""
    for call in sends(calls, group):
        if call.method not in TEXT_METHODS or call.time < since:
            continue
        text = str(call.params.get("text", ""))
        for number in MARKER.findall(tail + text):
            shown.setdefault(int(number), call.time)
        tail = text[-len("burst-000000") :]
    return shown


async def run(args: argparse.Namespace, started: Started) -> None:
    total: int = args.messages
    token, group = started.people[0]
    headers = {"Authorization": f"Bearer {token}"}
    counter = iter(range(total))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=args.in_flight)) as http:
        world = SandboxClient(started.sandbox, http)

        async def poster() -> None:
            for n in counter:
                body = {"category": "system", "content": {"text": text_of(n)}}
                async with http.post(started.url + SEND, json=body, headers=headers) as resp:
                    if resp.status != 202:
                        raise RuntimeError(f"answer {resp.status}: {await resp.text()}")

        first_post = time.time()
        await asyncio.gather(*(poster() for _ in range(args.in_flight)))
        posted = time.time() - first_post

        seen: set[int] = set()
        whole = longest = 0

        async def all_visible() -> bool:
            nonlocal seen, whole, longest
            seen, whole, longest = visible(await world.get_chat(group))
            return len(seen) >= total

        everything = await wait_until(
            world, all_visible, within=max(0.0, args.timeout - (time.time() - first_post))
        )
        await all_visible()
        waited = time.time() - first_post
        calls = await world.get_calls()

    sent = [c for c in sends(calls, group) if c.time >= first_post]
    messages = sum(1 for c in sent if c.method == "sendMessage")
    edits = len(sent) - messages
    shown = first_shown(calls, group, first_post)
    last = max((shown[n] for n in seen if n in shown), default=first_post)
    refused = sum(1 for c in calls if c.status == 429)
    flood = started.flood

    print(
        f"burst of {total} messages to one person's group, POSTed in {posted:.1f} s "
        f"({args.in_flight} in flight), {os.cpu_count()} CPUs, SQLite (WAL); sandbox flood "
        f"control on ({flood['global_per_second']}/s for the bot, "
        f"{flood['group_per_minute']}/min per group), the gateway pacing to the same"
    )
    print(
        f"Telegram messages to the group: {messages} sendMessage, {edits} edits; the longest "
        f"text in the group {longest} characters (UTF-16 units, entities parsed; limit 4096)"
    )
    if everything:
        print(
            f"all {total} messages visible (whole text: {whole}), the last one "
            f"{last - first_post:.1f} s after the first POST"
        )
    else:
        print(
            f"TIMED OUT after {waited:.0f} s: {len(seen)} of {total} messages visible so far "
            f"(whole text: {whole}), the last of them {last - first_post:.1f} s after the first "
            f"POST; the rest still queued"
        )
    # The sandbox counts from when flood control came on, after the setup (nothing is sent
    # between then and the first POST); the bot posted its welcome in the group before that.
    print(
        f"429 answers from the sandbox: {refused}; most messages to the group in any 60 s: "
        f"{most_in_window([c.time for c in sent], 60.0)} (limit {flood['group_per_minute']}; "
        f"{most_in_window([c.time for c in sends(calls, group)], 60.0)} with the welcome the "
        f"bot posted, unpaced, when the group was linked just before)"
    )
    print("reproduce: .venv/bin/python bench/burst.py " + " ".join(sys.argv[1:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("messages", type=int, nargs="?", default=1000)
    parser.add_argument("--in-flight", type=int, default=32, help="POSTs in flight")
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds after the first POST to give up"
    )
    args = parser.parse_args()
    with launch("paced", "1") as started:
        asyncio.run(run(args, started))


if __name__ == "__main__":
    main()
