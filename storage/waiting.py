"""Bounded waits on asyncio events, for the long-running loops (the delivery worker, the commit
watch): a pause that a stop cuts short, and a wait for the first of several events."""

from __future__ import annotations

import asyncio
import contextlib


async def pause(stop: asyncio.Event, seconds: float) -> None:
    """Wait `seconds` unless `stop` is set first."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def first_set(*events: asyncio.Event, within: float | None) -> None:
    """Wait until one of `events` is set, or `within` seconds (None: no bound)."""
    waits = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
        await asyncio.gather(*waits, return_exceptions=True)
