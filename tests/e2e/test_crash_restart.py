"""Accepted means durable: a message answered 202 is delivered even if the gateway process is
killed (SIGKILL, no shutdown) before delivering it and started again, also when it is killed
again and again under load.

The gateway runs as `libral-gateway serve` (`gateway.cli.main(["serve"])`) in a child process of
a forkserver: a process that imported the gateway once and forks a fresh child per start. A
fork is the same program as a new interpreter, minus the several seconds importing aiogram
takes, so a test can kill and restart it many times. Each child is killed by its own pid.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

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
REPO = Path(__file__).resolve().parents[2]


def serve_forks() -> None:
    """The forkserver's loop, in its own process: a JSON request a line on stdin, a JSON answer
    a line on stdout. {"op": "fork", "env", "cwd", "log"} -> {"pid"}; {"op": "poll" | "wait",
    "pid"} -> {"returncode"} (None while running; -N if killed by signal N). At the end of its
    input it kills and reaps the children still running."""
    # The slow imports, done once for every child.
    import bot.dispatcher  # noqa: F401
    import gateway.cli
    import gateway.runtime

    children: set[int] = set()
    try:
        for line in sys.stdin:
            request = json.loads(line)
            answer: dict[str, Any]
            if request["op"] == "fork":
                pid = os.fork()
                if pid == 0:
                    _serve_child(gateway.cli.main, request)
                children.add(pid)
                answer = {"pid": pid}
            else:
                pid = int(request["pid"])
                done, status = os.waitpid(pid, os.WNOHANG if request["op"] == "poll" else 0)
                answer = {"returncode": None}
                if done:
                    children.discard(pid)
                    answer["returncode"] = os.waitstatus_to_exitcode(status)
            print(json.dumps(answer), flush=True)
    finally:
        for pid in children:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def _serve_child(main: Callable[[list[str]], int], request: dict[str, Any]) -> None:
    """In the forked child: its own stdio, directory and environment, then `serve`; never
    returns into the forkserver's loop."""
    code = 1
    try:
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        code = main(["serve"])
    finally:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


class Forkserver:
    """The test's handle on the forkserver process (one per module: it imports for ~10 s)."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-c", f"from {__name__} import serve_forks; serve_forks()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=REPO,
            text=True,
        )
        self._lock = threading.Lock()

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self._proc.stdin is not None
        assert self._proc.stdout is not None
        with self._lock:
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
            line = self._proc.stdout.readline()
        assert line, "the forkserver exited"
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def ask(self, **request: Any) -> dict[str, Any]:
        return await asyncio.to_thread(self._ask, request)

    def close(self) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.close()  # it kills any child left, then exits
        try:
            self._proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


@pytest.fixture(scope="module")
def forks() -> Iterator[Forkserver]:
    server = Forkserver()
    try:
        yield server
    finally:
        server.close()


class GatewayProcess:
    """`libral-gateway serve` in a child process, pointed at the test's sandbox."""

    def __init__(
        self, forks: Forkserver, tmp_path: Path, sandbox_url: str, **settings: str
    ) -> None:
        self.forks = forks
        self.port = free_port()
        self.db = tmp_path / "gw.sqlite3"
        self.log = tmp_path / "gateway.log"  # stdout and stderr of every start, appended
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("LIBRAL_")}
        self.env.update(
            LIBRAL_BOT_TOKEN=DEFAULT_BOT_TOKEN,
            LIBRAL_TELEGRAM_API_URL=sandbox_url,
            LIBRAL_DATABASE_URL=f"sqlite+aiosqlite:///{self.db}",
            LIBRAL_HTTP_PORT=str(self.port),
            LIBRAL_CONTENT_KEY_FILE=str(tmp_path / "content.key"),
            **settings,
        )
        self.cwd = tmp_path
        self.pid: int | None = None
        self.returncode: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _poll(self) -> int | None:
        assert self.pid is not None
        if self.returncode is None:
            self.returncode = (await self.forks.ask(op="poll", pid=self.pid))["returncode"]
        return self.returncode

    async def start(self, http: aiohttp.ClientSession) -> None:
        request = {"env": self.env, "cwd": str(self.cwd), "log": str(self.log)}
        self.pid = int((await self.forks.ask(op="fork", **request))["pid"])
        self.returncode = None

        async def healthy() -> bool:
            code = await self._poll()
            assert code is None, f"gateway exited during start-up ({code}); see {self.log}"
            try:
                async with http.get(f"{self.url}/api/v1/communication/health") as resp:
                    return resp.status == 200
            except aiohttp.ClientConnectionError:
                return False

        await eventually(healthy, within=60, what="the gateway to answer health with 200")

    async def kill(self) -> None:
        assert self.pid is not None
        os.kill(self.pid, signal.SIGKILL)
        self.returncode = (await self.forks.ask(op="wait", pid=self.pid))["returncode"]
        assert self.returncode == -signal.SIGKILL

    async def stop(self) -> None:
        if self.pid is None or await self._poll() is not None:
            return
        os.kill(self.pid, signal.SIGINT)
        try:

            async def exited() -> bool:
                return await self._poll() is not None

            await eventually(exited, within=20, what="the gateway to shut down")
        except AssertionError:
            os.kill(self.pid, signal.SIGKILL)
            self.returncode = (await self.forks.ask(op="wait", pid=self.pid))["returncode"]
        assert self.returncode == 0, f"exit status {self.returncode}; see {self.log}"

    def query(self, sql: str, *args: object) -> list[tuple[object, ...]]:
        with sqlite3.connect(self.db) as conn:
            return conn.execute(sql, args).fetchall()

    def expire_leases(self) -> int:
        """With the gateway down: let the claims it held run out now (its restarted self would
        wait out the 60 s lease first; the send after it is what is under test)."""
        with sqlite3.connect(self.db) as conn:
            cursor = conn.execute(
                "UPDATE messages SET claimed_until = '2000-01-01 00:00:00.000000' "
                "WHERE status = 'sending'"
            )
            return cursor.rowcount


@pytest.fixture
async def world(aiohttp_server: ServerFactory) -> AsyncIterator[tuple[str, aiohttp.ClientSession]]:
    sandbox = await aiohttp_server(create_sandbox_app())
    async with aiohttp.ClientSession() as http:
        yield str(sandbox.make_url("")).rstrip("/"), http


async def test_message_survives_kill_and_restart(
    world: tuple[str, aiohttp.ClientSession], tmp_path: Path, forks: Forkserver
) -> None:
    sandbox_url, http = world
    control = SandboxClient(sandbox_url, http)
    gateway = GatewayProcess(forks, tmp_path, sandbox_url)
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


# --- killed again and again under load --------------------------------------------------------

KILLS = 4
PER_ROUND = 12  # messages posted in each round (and once more after the last restart)
IN_FLIGHT = 3  # POST /send requests at once
SEED = 7  # when, in each round, the kill comes


class Load:
    """Posts the messages it is given, IN_FLIGHT at a time, while the gateway is up. A 202 makes
    a message accepted; a request that failed (connection refused or cut by the kill) does not,
    and is not tried again."""

    def __init__(self, http: aiohttp.ClientSession, url: str, token: str) -> None:
        self._http = http
        self._url = url
        self._token = token
        self.accepted: dict[str, str] = {}  # text -> message id
        self.failed: list[str] = []
        self.unexpected: list[int] = []  # statuses other than 202
        self.posted = 0
        self.up = asyncio.Event()
        self._todo: asyncio.Queue[str] = asyncio.Queue()
        self._news = asyncio.Condition()
        self._posters: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self.up.set()
        self._posters = [asyncio.create_task(self._post_forever()) for _ in range(IN_FLIGHT)]

    async def close(self) -> None:
        for poster in self._posters:
            poster.cancel()
        await asyncio.gather(*self._posters, return_exceptions=True)

    def add(self, texts: list[str]) -> None:
        for text in texts:
            self._todo.put_nowait(text)

    async def accepted_beyond(self, count: int, *, within: float) -> None:
        await self._until(lambda: len(self.accepted) > count, within, f"{count + 1} 202s")

    async def posted_all(self, count: int, *, within: float) -> None:
        await self._until(lambda: self.posted == count, within, f"{count} requests")

    async def _until(self, done: Callable[[], bool], within: float, what: str) -> None:
        try:
            async with asyncio.timeout(within), self._news:
                await self._news.wait_for(done)
        except TimeoutError:
            raise AssertionError(f"timed out after {within} s waiting for {what}") from None

    async def _post_forever(self) -> None:
        while True:
            text = await self._todo.get()
            await self.up.wait()
            message_id, status = None, None
            try:
                async with self._http.post(
                    f"{self._url}/api/v1/communication/send",
                    json={"category": "system", "content": {"text": text}},
                    headers={"Authorization": f"Bearer {self._token}"},
                ) as resp:
                    status = resp.status
                    if status == 202:
                        message_id = (await resp.json())["message_id"]
            except aiohttp.ClientConnectionError:
                pass  # the gateway died under it: not accepted
            async with self._news:
                self.posted += 1
                if message_id is not None:
                    self.accepted[text] = message_id
                else:
                    self.failed.append(text)
                    if status is not None:
                        self.unexpected.append(status)
                self._news.notify_all()


async def copies_in(control: SandboxClient, group: int) -> tuple[int, Counter[str]]:
    """The chat's version and how often each load message is in it."""
    chat = await control.get_chat(group)
    texts = ((m.text or "").split("\n")[0] for m in chat.bot_messages())
    return chat.version, Counter(t for t in texts if t.startswith("load "))


async def test_accepted_messages_survive_repeated_kills_under_load(
    world: tuple[str, aiohttp.ClientSession], tmp_path: Path, forks: Forkserver
) -> None:
    sandbox_url, http = world
    control = SandboxClient(sandbox_url, http)
    # No pacing: the sandbox's flood control is off and the load goes to one group.
    unpaced = {f"LIBRAL_TELEGRAM_{k}_RATE": "0" for k in ("GLOBAL", "GROUP", "CHAT")}
    gateway = GatewayProcess(forks, tmp_path, sandbox_url, **unpaced)
    rng = random.Random(SEED)
    kill_times: list[float] = []
    leases_expired = 0
    await gateway.start(http)
    load: Load | None = None
    try:
        running = Running(control, http, gateway.url, f"sqlite+aiosqlite:///{gateway.db}")
        _, group, token = await running.person_with_log()
        load = Load(http, gateway.url, token)
        load.start()
        numbers = iter(range(10_000))
        for _ in range(KILLS):
            load.add([f"load {next(numbers):03d}" for _ in range(PER_ROUND)])
            # The kill comes after a seeded number of 202s, or of sends Telegram accepted
            # (then likely between a send and its commit): both come while the gateway is up.
            wait_for = rng.randint(1, PER_ROUND)
            if rng.random() < 0.5:
                await load.accepted_beyond(len(load.accepted) + wait_for - 1, within=30)
            else:
                version, copies = await copies_in(control, group)
                target = copies.total() + wait_for
                async with asyncio.timeout(30):
                    while copies.total() < target:
                        await control.wait_for_change(version, wait=30)
                        version, copies = await copies_in(control, group)
            load.up.clear()  # no new requests; those in flight are cut by the kill
            await gateway.kill()
            kill_times.append(time.time())
            leases_expired += gateway.expire_leases()
            await gateway.start(http)
            load.up.set()
        load.add([f"load {next(numbers):03d}" for _ in range(PER_ROUND)])
        total = (KILLS + 1) * PER_ROUND
        await load.posted_all(total, within=30)
        assert load.unexpected == []

        # Every accepted message arrives (a failed request's may too, if it was committed).
        accepted = dict(load.accepted)
        async with asyncio.timeout(30):
            version, copies = await copies_in(control, group)
            while any(copies[text] == 0 for text in accepted):
                await control.wait_for_change(version, wait=30)
                version, copies = await copies_in(control, group)
        ids = list(accepted.values())
        marks = ",".join("?" * len(ids))
        sql = f"SELECT status, count(*) FROM messages WHERE id IN ({marks}) GROUP BY status"  # noqa: S608
        await eventually(
            lambda: gateway.query(sql, *ids) == [("delivered", len(ids))],
            within=20,
            what="every accepted message to be committed as delivered",
        )
        version, copies = await copies_in(control, group)

        # A message arrives again only when a kill came between Telegram taking its send and the
        # commit recording it: each extra copy went out after a kill that followed the copy
        # before it. One chat has one send in flight at a time, so each kill makes at most one
        # (a message resent first after a restart may be hit by the next kill too).
        sends = [
            c for c in await control.get_calls() if c.method == "sendMessage" and c.status == 200
        ]
        blamed: list[float] = []  # for each extra copy, the kill that cut off its commit
        for text in (t for t, n in copies.items() if n > 1):
            times = sorted(c.time for c in sends if c.params["text"].split("\n")[0] == text)
            assert len(times) == copies[text]
            for sent, again in itertools.pairwise(times):
                kill = next((k for k in kill_times if k > sent), again)
                assert kill < again, f"{text} sent twice with no kill in between"
                blamed.append(kill)
        assert len(blamed) == len(set(blamed)) <= KILLS
        assert len(load.failed) + len(accepted) == total
        print(
            f"\n{KILLS} kills; {len(accepted)} of {total} messages accepted, "
            f"{len(load.failed)} requests cut; {leases_expired} lease(s) held by a killed "
            f"gateway; {len(blamed)} duplicate(s)"
        )
    finally:
        if load is not None:
            await load.close()
        await gateway.stop()
