"""Waiting on a condition that no event announces (another process's database or socket).

Everything in-process waits on events; this is only for state owned by a child process.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

POLL_INTERVAL = 0.02


async def eventually(
    check: Callable[[], bool | Awaitable[bool]], *, within: float, what: str
) -> None:
    """Return once `check()` is true; fail with `what` after `within` seconds."""
    try:
        async with asyncio.timeout(within):
            while True:
                result = check()
                if inspect.isawaitable(result):
                    result = await result
                if result:
                    return
                await asyncio.sleep(POLL_INTERVAL)
    except TimeoutError:
        raise AssertionError(f"timed out after {within} s waiting for {what}") from None
