"""The floor under bench/pipeline.py: aiogram's sendMessage into the sandbox, and nothing else.

No gateway, no database: this process sends N messages with aiogram (the gateway's own
`build_bot`, the same arguments as the delivery worker's sends) into the forum topics of P
groups, K chats at a time and each chat's messages one after another (as the delivery worker
serves them), to the sandbox Bot API server in a process of its own. It prints the rate and
the CPU each side spends on a message. Whatever the gateway does around a send (claiming,
routing, recording) comes on top of these figures, so they bound what bench/pipeline.py can
reach on this machine: its target of 1,500 messages a second on 2 CPUs leaves 2 / 1,500 s =
1.33 ms of CPU a message for everything, load generator and sandbox included.

Usage: .venv/bin/python bench/send_floor.py [messages, default 20000] [chats at once, default 8]
       [groups, default 20]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import sys
import time

import aiohttp
from _servers import launch, process_cpu_seconds  # sibling module: bench/ is on sys.path
from aiogram.enums import ParseMode

from gateway.runtime import build_bot
from gateway.sandbox_demo import ADMIN_RIGHTS
from sandbox.client import SandboxClient
from sandbox.state import DEFAULT_BOT_TOKEN

TEXT = "<b>#alerts</b> disk almost full on host-42: 91% used, 12 GiB left"


async def _groups(world: SandboxClient, count: int) -> list[int]:
    """`count` forum groups with the bot as administrator."""
    groups = []
    for n in range(count):
        owner = await world.create_user(f"Person {n}")
        group = await world.create_group(f"Log {n}", owner_id=owner, is_forum=True)
        await world.set_bot_membership(
            group, by_id=owner, status="administrator", rights=ADMIN_RIGHTS
        )
        groups.append(group)
    return groups


async def run(
    total: int, at_once: int, group_count: int, sandbox_url: str, sandbox_pid: int
) -> None:
    bot = build_bot(DEFAULT_BOT_TOKEN, sandbox_url)
    try:
        async with aiohttp.ClientSession() as http:
            groups = await _groups(SandboxClient(sandbox_url, http), group_count)
        threads = {
            group: (await bot.create_forum_topic(group, "Alerts")).message_thread_id
            for group in groups
        }
        # Each group gets its share. K sends are under way at a time, each to a group none of
        # the others is sending to, and a group goes to the back of the line after each send:
        # each group's messages go in order, and K stay busy until fewer groups have any left.
        left = {group: total // group_count for group in groups}
        left[groups[0]] += total - sum(left.values())
        waiting = collections.deque(group for group in groups if left[group])

        async def sender() -> None:
            while waiting:
                group = waiting.popleft()
                await bot.send_message(
                    chat_id=group,
                    text=TEXT,
                    message_thread_id=threads[group],
                    parse_mode=ParseMode.HTML,
                    request_timeout=20,
                )
                left[group] -= 1
                if left[group]:
                    waiting.append(group)

        cpu, sandbox_cpu = time.process_time(), process_cpu_seconds(sandbox_pid)
        start = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(at_once)))
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu
        sandbox_cpu = process_cpu_seconds(sandbox_pid) - sandbox_cpu
    finally:
        await bot.session.close()
    print(
        f"{total} sendMessage calls into {group_count} groups, {at_once} chats at once, "
        f"{os.cpu_count()} CPUs, sandbox in a process of its own"
    )
    print(f"sent          {total / elapsed:6.0f} msg/s  ({elapsed:.1f} s)")
    print(
        f"CPU per message: aiogram's side {cpu / total * 1000:.2f} ms, "
        f"sandbox {sandbox_cpu / total * 1000:.2f} ms"
    )
    print(f"reproduce: .venv/bin/python bench/send_floor.py {total} {at_once} {group_count}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("messages", nargs="?", type=int, default=20000)
    parser.add_argument("at_once", nargs="?", type=int, default=8)
    parser.add_argument("groups", nargs="?", type=int, default=20)
    args = parser.parse_args()
    if args.messages < 1 or args.at_once < 1 or args.groups < 1:
        sys.exit("send_floor.py: messages, chats at once and groups must be at least 1")
    if args.at_once > args.groups:
        sys.exit(
            "send_floor.py: chats at once cannot exceed groups (a group's messages go one by one)"
        )
    with launch("sandbox") as started:
        asyncio.run(run(args.messages, args.at_once, args.groups, started.url, started.pid))


if __name__ == "__main__":
    main()
