"""Servers for the benchmarks, each run in a process of its own (so the load generator does not
share its CPU), and the helpers the bench scripts share to start them and read the sandbox.

Kinds of server:

- `gateway [PEOPLE] [SANDBOX_URL]`: the sandbox Bot API server with flood control off, plus the
  whole gateway with pacing off and PEOPLE people (default 1) each with a linked group, in one
  process (one event loop), or against the sandbox at SANDBOX_URL (a `sandbox` process);
  prints `PERSON <token> <group id>` per person, `SANDBOX <url>` and `READY <api url>`.
- `sandbox`: the sandbox Bot API server alone; prints `READY <url>`.
- `paced PEOPLE [SANDBOX_URL]`: the whole gateway pacing to Telegram's default limits, with a
  sandbox in its process as `gateway` has, or against the one at SANDBOX_URL (a `sandbox`
  process). PEOPLE people each link a personal-log group while flood control is off, then the
  sandbox's flood control goes on with the same limits (30 messages a second for the bot, 20 a
  minute per group, 1 a second per private chat); prints `PERSON <token> <group id>` per
  person, `SANDBOX <url>`, `FLOOD <settings as JSON>` and `READY <api url>`.
- `bare`: an aiohttp app that parses the same JSON as `POST /send` and answers 202; prints
  `READY <url>`.

- `api DATABASE_URL API_URL SANDBOX_URL`: `serve --role api` beside a `gateway` or `paced`
  server (which bind with SO_REUSEPORT and print `DATABASE <url>`): its database, its port;
  prints `READY <api url>`.

Usage (by the bench scripts):
    python bench/_servers.py gateway [PEOPLE [URL]] | sandbox | paced PEOPLE [URL] | bare
                             | api DATABASE_URL API_URL SANDBOX_URL

With BENCH_LOOP_LAG=1 in the environment, a server measures how late its event loop wakes a
task that sleeps 1 ms, over and over, and prints the percentiles of that lateness to stderr
when it stops: how long the loop was held by one piece of work, which every request in
flight waits out. BENCH_PROFILE=PATH writes a cProfile of each server process to PATH.KIND.PID.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp
from aiohttp import web

if TYPE_CHECKING:
    from gateway.delivery.pacing import TelegramRates
    from sandbox.client import CallView, SandboxClient

SEND = "/api/v1/communication/send"
HERE = Path(__file__).resolve().parent
# Bot API methods the sandbox's flood control counts (sandbox/methods: counts_as_send=True).
SEND_METHODS = frozenset(
    {"sendMessage", "editMessageText", "editMessageReplyMarkup", "sendDocument"}
)
BENCH_CONTENT_KEY = b"b" * 32
SETUP_CONCURRENCY = 12  # people set up at once by `paced`
SETUP_WAIT = 20.0  # seconds one try of a step of a person's setup may take
SETUP_ATTEMPTS = 3
T = TypeVar("T")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_READY = asyncio.Event()  # set when the server announced READY (BENCH_LOOP_LAG)


def _ready(url: str) -> None:
    print(f"READY {url}", flush=True)
    _READY.set()


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
    _ready(f"http://127.0.0.1:{port}")
    await _until_signal()
    await runner.cleanup()


async def _serve_sandbox() -> tuple[web.AppRunner, str]:
    from sandbox.server import create_sandbox_app

    runner = web.AppRunner(create_sandbox_app(), access_log=None)
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


async def sandbox() -> None:
    runner, url = await _serve_sandbox()
    _ready(url)
    await _until_signal()
    await runner.cleanup()


@asynccontextmanager
async def sandbox_and_gateway(
    rates: TelegramRates, sandbox_url: str | None = None
) -> AsyncIterator[tuple[str, str]]:
    """The whole gateway (SQLite in a temporary directory, or the database at
    BENCH_DATABASE_URL) pacing to `rates`, against the
    sandbox at `sandbox_url` or, without one, a sandbox in this process (sharing its event
    loop): (sandbox url, gateway API url)."""
    from gateway.runtime import GatewayConfig, run_gateway
    from sandbox.state import DEFAULT_BOT_TOKEN
    from storage import migrate

    runner = None
    if sandbox_url is None:
        runner, sandbox_url = await _serve_sandbox()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            # BENCH_DATABASE_URL: an empty database of the bench script's (PostgreSQL, say).
            db = os.environ.get("BENCH_DATABASE_URL") or (
                f"sqlite+aiosqlite:///{Path(tmp) / 'bench.sqlite3'}"
            )
            await asyncio.to_thread(migrate.upgrade, db)
            port = _free_port()
            config = GatewayConfig(
                DEFAULT_BOT_TOKEN,
                sandbox_url,
                db,
                "127.0.0.1",
                port,
                BENCH_CONTENT_KEY,
                telegram_rates=rates,
                reuse_port=True,  # `api` processes may join it on its port
            )
            print(f"DATABASE {db}", flush=True)
            stop, ready = asyncio.Event(), asyncio.Event()
            task = asyncio.create_task(run_gateway(config, stop, on_ready=ready.set))
            await ready.wait()
            try:
                yield sandbox_url, f"http://127.0.0.1:{port}"
            finally:
                stop.set()
                await task
    finally:
        if runner is not None:
            await runner.cleanup()


async def _until_done(
    what: str, act: Callable[[int], Awaitable[object]], done: Callable[[], Awaitable[T]]
) -> T:
    """`act(attempt)`, then `done()`; again (a person would repeat the command) when `done()`
    times out: the bot's handler may have failed (e.g. SQLite's "database is locked")."""
    for attempt in range(SETUP_ATTEMPTS):
        await act(attempt)
        with contextlib.suppress(TimeoutError):
            return await done()
    raise RuntimeError(f"no {what} after {SETUP_ATTEMPTS} tries of {SETUP_WAIT:g} s")


async def _link_person(world: SandboxClient, name: str) -> tuple[str, int]:
    """A new person who started the bot and linked a forum group as personal log:
    (their API token, the group's chat id)."""
    from gateway.sandbox_demo import ADMIN_RIGHTS, token_from

    user = await world.create_user(name)
    await _until_done(
        f"answer to {name}'s /start",
        lambda _: world.send_message(user, user, "/start"),
        lambda: world.wait_for_bot_message(user, within=SETUP_WAIT),
    )
    group = await world.create_group(name, owner_id=user, is_forum=True)

    async def add_bot_or_setup(attempt: int) -> object:
        if attempt == 0:
            return await world.set_bot_membership(
                group, by_id=user, status="administrator", rights=ADMIN_RIGHTS
            )
        return await world.send_message(user, group, "/setup")

    await _until_done(
        f"welcome in {name}'s group",
        add_bot_or_setup,
        lambda: world.wait_for_bot_message(
            group, lambda m: "your personal log" in (m.text or ""), within=SETUP_WAIT
        ),
    )
    await _until_done(
        f"answer to {name}'s /token",
        lambda _: world.send_message(user, user, "/token"),
        lambda: world.wait_for_bot_message(
            user, lambda m: token_from(m) is not None, within=SETUP_WAIT
        ),
    )
    chat = await world.get_chat(user)
    token = [t for t in map(token_from, chat.bot_messages()) if t is not None][-1]  # the newest
    return token, group


async def gateway(people: int = 1, sandbox_url: str | None = None) -> None:
    from gateway.delivery.pacing import TelegramRates
    from sandbox.client import SandboxClient

    # Flood control is off in this sandbox, so pacing is off too.
    unlimited = TelegramRates.unlimited()
    async with sandbox_and_gateway(unlimited, sandbox_url) as (sandbox_url, api_url):
        async with aiohttp.ClientSession() as http:
            world = SandboxClient(sandbox_url, http)
            await world.set_flood(enabled=False)
            for token, group in await _link_people(world, people):
                print(f"PERSON {token} {group}", flush=True)
            print(f"SANDBOX {sandbox_url}", flush=True)
        _ready(api_url)
        await _until_signal()


async def _link_people(world: SandboxClient, people: int) -> list[tuple[str, int]]:
    """`people` people linked as `_link_person` does, a few at a time."""
    slots = asyncio.Semaphore(SETUP_CONCURRENCY)

    async def link(n: int) -> tuple[str, int]:
        async with slots:
            return await _link_person(world, f"Bench {n}")

    return list(await asyncio.gather(*(link(n) for n in range(people))))


async def paced(people: int, sandbox_url: str | None = None) -> None:
    from gateway.delivery.pacing import TelegramRates
    from sandbox.client import SandboxClient
    from sandbox.flood import FloodLimits

    # The gateway paces to Telegram's default limits, which the sandbox enforces once set up.
    rates, limits = TelegramRates(), FloodLimits()
    assert (rates.global_per_second, rates.group_per_minute, rates.chat_per_second) == (
        limits.global_per_second,
        limits.group_per_minute,
        limits.private_chat_per_second,
    ), "the gateway's default rates and the sandbox's default limits differ"
    async with sandbox_and_gateway(rates, sandbox_url) as (url, api_url):
        async with aiohttp.ClientSession() as http:
            world = SandboxClient(url, http)
            await world.set_flood(enabled=False)  # setting up is not what is measured
            linked = await _link_people(world, people)
            flood = await world.set_flood(
                enabled=True,
                global_per_second=limits.global_per_second,
                group_per_minute=limits.group_per_minute,
                private_chat_per_second=limits.private_chat_per_second,
            )
        for token, group in linked:
            print(f"PERSON {token} {group}", flush=True)
        print(f"SANDBOX {url}", flush=True)
        print(f"FLOOD {json.dumps(flood.__dict__)}", flush=True)
        _ready(api_url)
        await _until_signal()


async def api(database_url: str, api_url: str, sandbox_url: str) -> None:
    """`serve --role api` beside a `gateway` or `paced` server: its database, on its port."""
    from gateway.runtime import GatewayConfig, run_gateway
    from sandbox.state import DEFAULT_BOT_TOKEN

    host, _, port = api_url.removeprefix("http://").partition(":")
    config = GatewayConfig(
        DEFAULT_BOT_TOKEN,
        sandbox_url,
        database_url,
        host,
        int(port),
        BENCH_CONTENT_KEY,
        role="api",
        reuse_port=True,
    )
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run_gateway(config, stop, on_ready=ready.set))
    await ready.wait()
    _ready(api_url)
    await _until_signal()
    stop.set()
    await task


# --- for the bench scripts -------------------------------------------------------------------


@dataclass
class Started:
    """What a server process announced before READY."""

    url: str  # the gateway's (or the bare app's) base URL
    sandbox: str = ""  # the sandbox's base URL
    people: list[tuple[str, int]] = field(default_factory=list)  # (token, group) per person
    flood: dict[str, Any] = field(default_factory=dict)  # the sandbox's flood settings
    database: str = ""  # the gateway's database URL
    pid: int = 0  # the server's process
    sandbox_pid: int = 0  # the sandbox's, when it runs in a process of its own

    def cpu_seconds(self) -> float:
        """CPU time (user and system) the server's process has used so far."""
        return process_cpu_seconds(self.pid)


def process_cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of process `pid` (Linux: /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    # Fields 14 and 15 of stat(5) (utime, stime), counted here after the ")" of field 2.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def launch(kind: str, *args: str) -> Iterator[Started]:
    """Run `python bench/_servers.py kind args...` until the block ends (then stop it)."""
    proc = subprocess.Popen(  # noqa: S603 - our own server script, fixed arguments
        [sys.executable, str(HERE / "_servers.py"), kind, *args],
        stdout=subprocess.PIPE,
        text=True,
        cwd=HERE.parent,
        env={**os.environ, "PYTHONPATH": str(HERE.parent)},
    )
    started = Started("", pid=proc.pid)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            word, _, rest = line.strip().partition(" ")
            if word == "PERSON":
                token, group = rest.split()
                started.people.append((token, int(group)))
            elif word == "SANDBOX":
                started.sandbox = rest.split()[0]
            elif word == "DATABASE":
                started.database = rest
            elif word == "FLOOD":
                started.flood = json.loads(rest)
            elif word == "READY":
                started.url = rest
                yield started
                break
        else:
            raise RuntimeError(f"{kind} server did not start")
    finally:
        proc.terminate()
        proc.wait(timeout=60)


@contextmanager
def with_api_processes(
    started: Started, count: int, *, own_port: bool = False
) -> Iterator[list[Started]]:
    """`count` `serve --role api` processes beside the gateway `started`, sharing its port;
    with `own_port`, sharing a port of their own instead (the gateway's then takes none of
    the requests sent there: see their `url`)."""
    url = f"http://127.0.0.1:{_free_port()}" if own_port else started.url
    with contextlib.ExitStack() as stack:
        yield [
            stack.enter_context(launch("api", started.database, url, started.sandbox))
            for _ in range(count)
        ]


@contextmanager
def launch_with_sandbox(kind: str, people: int, *, separate: bool) -> Iterator[Started]:
    """`launch(kind, people)` of a gateway kind (`gateway` or `paced`): with `separate`, against
    a `sandbox` process of its own; else with the sandbox in the gateway's process."""
    with contextlib.ExitStack() as stack:
        sandbox = stack.enter_context(launch("sandbox")) if separate else None
        sandbox_url = [sandbox.url] if sandbox is not None else []
        started = stack.enter_context(launch(kind, str(people), *sandbox_url))
        started.sandbox_pid = sandbox.pid if sandbox is not None else 0
        yield started


async def wait_until(
    world: SandboxClient,
    check: Callable[[], Awaitable[bool]],
    *,
    within: float,
    changes: int = 20,
    idle: float = 1.0,
) -> bool:
    """Whether `check()` came true within `within` seconds. It is re-checked after `changes`
    changes of the sandbox's state (long-polled) or, if fewer come, after `idle` seconds, so a
    costly check (the whole call log) does not load the server on every single send."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        version = await world.wait_for_change(-1, wait=0)  # the version now, at once
        if await check():
            return True
        remaining = deadline - loop.time()
        if remaining <= 0:
            return False
        await world.wait_for_change(version + changes - 1, wait=min(idle, remaining))


def sends(calls: list[CallView], chat_id: int | None = None) -> list[CallView]:
    """The successful calls the flood control counts (to `chat_id`, or to any chat)."""
    return [
        c
        for c in calls
        if c.method in SEND_METHODS
        and c.status == 200
        and (chat_id is None or c.params.get("chat_id") == chat_id)
    ]


class NewCalls:
    """The sandbox's record of Bot API calls, read a little at a time: each `read()` returns
    the calls since the last (`GET /sandbox/calls?after=N`). Reading the whole record at every
    look cost the sandbox more as a run went on (half its CPU by the end of a 20,000-message
    bench/pipeline.py), on the CPUs the gateway was measured on."""

    def __init__(self, world: SandboxClient) -> None:
        self._world = world
        self._seen = 0

    async def read(self) -> list[CallView]:
        calls = await self._world.get_calls(after=self._seen)
        self._seen += len(calls)
        return calls


def most_in_window(times: list[float], window: float) -> int:
    """The most of `times` inside any interval of `window` seconds."""
    ordered, most, start = sorted(times), 0, 0
    for end, at in enumerate(ordered):
        while ordered[start] <= at - window:
            start += 1
        most = max(most, end - start + 1)
    return most


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _with_loop_lag(server: Coroutine[Any, Any, None]) -> None:
    """`server`, with its event loop's lateness measured meanwhile (BENCH_LOOP_LAG)."""
    loop = asyncio.get_running_loop()
    lateness: list[float] = []

    async def probe() -> None:
        while True:
            asked = loop.time()
            await asyncio.sleep(0.001)
            lateness.append(loop.time() - asked - 0.001)

    async def after_ready() -> None:  # the server's start is not what is measured
        await _READY.wait()
        await probe()

    task = asyncio.create_task(after_ready())
    try:
        await server
    finally:
        task.cancel()
        ms = [x * 1000 for x in lateness]
        if ms:
            print(
                f"LOOP LAG {sys.argv[1]}: {len(ms)} wake-ups, p50 {percentile(ms, 0.5):.1f} ms, "
                f"p99 {percentile(ms, 0.99):.1f}, p99.9 {percentile(ms, 0.999):.1f}, "
                f"max {max(ms):.1f}",
                file=sys.stderr,
                flush=True,
            )


def _main() -> None:
    kind = sys.argv[1]
    servers: dict[str, Callable[[], Coroutine[Any, Any, None]]] = {
        "bare": bare,
        "gateway": lambda: gateway(
            int(sys.argv[2]) if len(sys.argv) > 2 else 1, sys.argv[3] if len(sys.argv) > 3 else None
        ),
        "sandbox": sandbox,
        "api": lambda: api(sys.argv[2], sys.argv[3], sys.argv[4]),
        "paced": lambda: paced(int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None),
    }
    server = servers[kind]()
    asyncio.run(_with_loop_lag(server) if os.environ.get("BENCH_LOOP_LAG") else server)


if __name__ == "__main__":
    profile_to = os.environ.get("BENCH_PROFILE")  # where to write a cProfile of the server
    if profile_to:
        import cProfile

        with cProfile.Profile() as profiler:
            _main()
        # One file for each server process (the gateway's, the sandbox's, an api's...).
        profiler.dump_stats(f"{profile_to}.{sys.argv[1]}.{os.getpid()}")
    else:
        _main()
