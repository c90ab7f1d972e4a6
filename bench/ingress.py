"""Benchmark 1, ingress: requests per second and p50/p99 latency of POST /send at several
concurrency levels, against (a) the gateway and (b) a bare aiohttp app that parses the same
JSON and answers 202, with one load generator, in the same run, on the same machine.

Each server runs in a process of its own (bench/_servers.py); the load generator here keeps a
fixed number of requests in flight. The gateway is the whole thing (HTTP API with auth,
validation, routing and the commit; bot; delivery worker; scheduler), on SQLite in WAL mode,
with a loopback sandbox as Telegram. It is measured as:

- `paced`: as shipped, pacing to Telegram's limits, which the sandbox enforces (flood control
  on); all messages go to one person, so their bursts fold into digests.
- `paced+api`: the same with one `serve --role api` process beside it, sharing its port
  (LIBRAL_HTTP_REUSE_PORT): two processes, as a two-core machine allows.
- `unpaced`: pacing and flood control off, so the worker delivers as fast as it can on the
  same CPU as the API (what bench/pipeline.py measures end to end).

Besides the rates: the CPU time the gateway's processes used per request (user and system,
the worker's included), steadier than the rates on a shared machine.

Usage: .venv/bin/python bench/ingress.py [requests per level, default 5000]
       [levels, default 1,16,64,256] [--configs paced,paced+api,unpaced] [--client lean|aiohttp]
       [--database sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import _load
import aiohttp
from _servers import (  # the sibling module (bench/ is on sys.path when run)
    SEND,
    Started,
    launch,
    percentile,
    process_cpu_seconds,
    with_api_processes,
)

# name -> (server kind, its arguments, `serve --role api` processes beside it)
CONFIGS: dict[str, tuple[str, tuple[str, ...], int]] = {
    "paced": ("paced", ("1",), 0),
    "paced+api": ("paced", ("1",), 1),
    "unpaced": ("gateway", (), 0),
}


@dataclass
class Level:
    rate: float  # requests a second
    latencies: list[float]  # seconds
    cpu_per_request: float | None = None  # seconds, the gateway's processes together

    def percentile(self, q: float) -> float:
        """In milliseconds."""
        return percentile(self.latencies, q) * 1000


def _body(n: int) -> bytes:
    return (
        b'{"category": "system", "content": {"text": "ingress benchmark message %d"}, '
        b'"hashtags": ["bench"]}' % n
    )


async def load(
    url: str, token: str | None, total: int, concurrency: int, client: str = "lean"
) -> Level:
    """Send `total` POSTs keeping `concurrency` in flight, with the lean load generator
    (bench/_load.py) or aiohttp's client."""
    if client == "lean":
        elapsed, latencies = await _load.run(
            url, SEND, token, map(_body, range(total)), concurrency
        )
        return Level(total / elapsed, latencies)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    if not token:
        del headers["Authorization"]
    latencies = []
    counter = iter(range(total))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def worker() -> None:
            for n in counter:
                started = time.perf_counter()
                async with http.post(url + SEND, data=_body(n), headers=headers) as resp:
                    await resp.read()
                    if resp.status != 202:
                        raise RuntimeError(f"answer {resp.status}: {await resp.text()}")
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return Level(total / elapsed, latencies)


def _cpu(processes: list[Started]) -> float:
    return sum(process_cpu_seconds(p.pid) for p in processes)


def measure(
    kind: str,
    args: tuple[str, ...],
    api_processes: int,
    total: int,
    levels: list[int],
    client: str,
    database: Callable[[], str | None] = lambda: None,
) -> dict[int, Level]:
    """`database()`: a new empty database's URL for the gateway, or None for SQLite."""
    results = {}
    with contextlib.ExitStack() as stack:
        url = database() if kind != "bare" else None
        if url is not None:
            stack.enter_context(mock.patch.dict(os.environ, {"BENCH_DATABASE_URL": url}))
        started = stack.enter_context(launch(kind, *args))
        extra = stack.enter_context(with_api_processes(started, api_processes))
        gateway = [started, *extra]
        url, token = started.url, (started.people[0][0] if started.people else None)
        for level in levels:
            # Warm up at this level first: opening its connections is not what is measured
            # (with short runs it dragged the bare app's figure down to less than half).
            asyncio.run(load(url, token, min(500, total), level, client))
            before = _cpu(gateway)
            results[level] = asyncio.run(load(url, token, total, level, client))
            if kind != "bare":
                results[level].cpu_per_request = (_cpu(gateway) - before) / total
    return results


def _databases(stack: contextlib.ExitStack) -> Callable[[], str]:
    """A PostgreSQL server for the run (durable, as in production); each call gives a new
    empty database on it."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository
    from tests.postgres import start_server

    server = start_server(durable=True)
    stack.callback(server.stop)
    names = itertools.count()

    def new() -> str:
        name = f"bench_{next(names)}"
        server.create_database(name)
        return server.url(name)

    return new


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("requests", type=int, nargs="?", default=5000)
    parser.add_argument("levels", nargs="?", default="1,16,64,256")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument(
        "--database",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="the gateway's database: SQLite in WAL mode (default), or a PostgreSQL server the "
        "bench starts as the tests do (tests/postgres.py), with durable commits",
    )
    parser.add_argument(
        "--client",
        choices=("lean", "aiohttp"),
        default="lean",
        help="the load generator: bench/_load.py (default) or aiohttp's client",
    )
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    names = args.configs.split(",")
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        parser.error(f"unknown configuration(s) {', '.join(unknown)}; known: {', '.join(CONFIGS)}")
    with contextlib.ExitStack() as stack:
        database = _databases(stack) if args.database == "postgresql" else (lambda: None)
        measured = {
            name: measure(*CONFIGS[name], args.requests, levels, args.client, database)
            for name in names
        }
    bare = measure("bare", (), 0, args.requests, levels, args.client)
    print(
        f"POST /send, {args.requests} requests per level, {os.cpu_count()} CPUs, "
        f"{'PostgreSQL (durable)' if args.database == 'postgresql' else 'SQLite (WAL)'}, "
        f"load generator: {args.client}"
    )
    print(
        f"{'gateway':>9} {'in flight':>9} | {'req/s':>6} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'CPU ms/req':>10} | {'bare req/s':>10} {'p50 ms':>7} {'p99 ms':>7} | ratio"
    )
    for name in names:
        for level in levels:
            g, b = measured[name][level], bare[level]
            cpu = g.cpu_per_request * 1000 if g.cpu_per_request is not None else float("nan")
            print(
                f"{name:>9} {level:>9} | {g.rate:>6.0f} {g.percentile(0.5):>7.1f} "
                f"{g.percentile(0.99):>7.1f} {cpu:>10.2f} | {b.rate:>10.0f} "
                f"{b.percentile(0.5):>7.1f} {b.percentile(0.99):>7.1f} | {g.rate / b.rate:.2f}"
            )
    print("reproduce: .venv/bin/python bench/ingress.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
