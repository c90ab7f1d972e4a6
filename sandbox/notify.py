"""A change counter that coroutines can wait on without polling."""

from __future__ import annotations

import asyncio


class ChangeSignal:
    """`bump()` from synchronous code; `await wait_beyond(version)` wakes on the next bump."""

    def __init__(self) -> None:
        self.version = 0
        self._event = asyncio.Event()

    def bump(self) -> None:
        self.version += 1
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait_beyond(self, version: int, seconds: float) -> bool:
        """Wait until `self.version > version`; False if `seconds` passed first."""
        try:
            async with asyncio.timeout(seconds):
                while self.version <= version:
                    await self._event.wait()
        except TimeoutError:
            return False
        return True
