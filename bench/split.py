"""Splitting a full digest: how long rendering the largest message the worker sends takes.

A digest holds up to 64 KiB of content (gateway.delivery.coalesce.MAX_DIGEST_CHARS); the worker
renders and splits it into Telegram messages on the event loop, once per attempt, so this time
is a stall of everything else the process does.

Usage: .venv/bin/python bench/split.py [repeats, default 20]
"""

from __future__ import annotations

import statistics
import sys
import time

from gateway.delivery.coalesce import MAX_DIGEST_CHARS
from gateway.rendering import render_message


def _digest_like(kind: str) -> str:
    line = "<b>12:00:{0:02d}</b> service alert {1}: disk usage above threshold on host-{1}"
    lines, size, n = [], 0, 0
    while size < MAX_DIGEST_CHARS:
        text = line.format(n % 60, n) if kind == "html" else f"12:00:{n % 60:02d} alert {n}"
        lines.append(text)
        size += len(text) + 1
        n += 1
    return "\n".join(lines)


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    print(f"render_message of a {MAX_DIGEST_CHARS // 1024} KiB digest, {repeats} repeats")
    for kind in ("html", "text"):
        source = _digest_like(kind)
        render_message(kind, source, "system", ("#bench",))  # warm up
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            parts = render_message(kind, source, "system", ("#bench",))
            times.append(time.perf_counter() - started)
        print(
            f"{kind:>5}: {len(parts)} parts, median {statistics.median(times) * 1000:.0f} ms, "
            f"max {max(times) * 1000:.0f} ms"
        )
    print("reproduce: .venv/bin/python bench/split.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
