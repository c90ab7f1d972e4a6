"""Benchmark 1, ingress: requests per second and p50/p99 latency of POST /send at several
concurrency levels, against (a) the gateway and (b) a bare aiohttp app that parses the same
JSON and answers 202, with one load generator, in the same run, on the same machine.

Each server runs in a process of its own (bench/_servers.py); the load generator here keeps a
fixed number of requests in flight. The gateway is the whole thing (HTTP API with auth,
validation, routing and the commit; bot; delivery worker sending to a loopback sandbox with
flood control off), on SQLite in WAL mode.

Usage: .venv/bin/python bench/ingress.py [requests per level, default 5000] [levels, e.g. 1,16,64]
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

import aiohttp
from _servers import SEND, launch  # the sibling module (bench/ is on sys.path when run)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def load(
    url: str, token: str | None, total: int, concurrency: int
) -> tuple[float, list[float]]:
    """Send `total` POSTs keeping `concurrency` in flight; (requests/s, latencies)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    latencies: list[float] = []
    counter = iter(range(total))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def worker() -> None:
            for n in counter:
                body = {
                    "category": "system",
                    "content": {"text": f"ingress benchmark message {n}"},
                    "hashtags": ["bench"],
                }
                started = time.perf_counter()
                async with http.post(url + SEND, json=body, headers=headers) as resp:
                    await resp.read()
                    if resp.status != 202:
                        raise RuntimeError(f"answer {resp.status}: {await resp.text()}")
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return total / elapsed, latencies


async def measure(kind: str, total: int, levels: list[int]) -> dict[int, tuple[float, list[float]]]:
    results = {}
    with launch(kind) as started:
        url, token = started.url, (started.people[0][0] if started.people else None)
        for level in levels:
            # Warm up at this level first: opening its connections is not what is measured
            # (with short runs it dragged the bare app's figure down to less than half).
            await load(url, token, min(500, total), level)
            results[level] = await load(url, token, total, level)
    return results


def main() -> None:
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    levels = [int(x) for x in (sys.argv[2] if len(sys.argv) > 2 else "1,16,64").split(",")]
    gateway = asyncio.run(measure("gateway", total, levels))
    bare = asyncio.run(measure("bare", total, levels))
    print(f"POST /send, {total} requests per level, {os.cpu_count()} CPUs, SQLite (WAL)")
    print(
        f"{'in flight':>9} | {'gateway req/s':>13} {'p50 ms':>7} {'p99 ms':>7} | "
        f"{'bare req/s':>10} {'p50 ms':>7} {'p99 ms':>7} | ratio"
    )
    for level in levels:
        g_rps, g_lat = gateway[level]
        b_rps, b_lat = bare[level]
        print(
            f"{level:>9} | {g_rps:>13.0f} {_pct(g_lat, 0.5):>7.1f} {_pct(g_lat, 0.99):>7.1f} | "
            f"{b_rps:>10.0f} {_pct(b_lat, 0.5):>7.1f} {_pct(b_lat, 0.99):>7.1f} | "
            f"{g_rps / b_rps:.2f}"
        )
    print("reproduce: .venv/bin/python bench/ingress.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
