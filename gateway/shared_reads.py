"""Reads in flight, shared by every caller that wants the same one at the same time.

A cache entry that expires under load is missed by every request in flight for it at once;
each then read the same rows (and, for a token, wrote the same "last used" time). With
`SharedReads`, the first miss begins the read and the others await it.

Only a read that began after the cache's last invalidation is shared: one begun before may
predate the change, and a request that came after the change must see it. The cache tells
which by its generation (advanced by every invalidation), given as the read's ticket; the read
itself stores its result only if the ticket is still current.

A read that fails raises to the request that began it; the others read again, together, once
(a passing failure, the database busy for a moment, is not to fail them all). A read that is
itself cancelled (only the event loop's end does that: callers are shielded from it) ends its
joiners with CancelledError too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SharedReads(Generic[K, V]):
    """One event loop only, as the caches that use it."""

    def __init__(self, generation: Callable[[], int]) -> None:
        """`generation()`: the cache's count of invalidations so far."""
        self._generation = generation
        self._reading: dict[K, tuple[int, asyncio.Task[V]]] = {}
        self.reads = 0  # begun (a failed shared read's joiners begin one more)
        self.shared = 0  # callers that joined a read in flight instead

    def __len__(self) -> int:
        return len(self._reading)

    async def read(self, key: K, read: Callable[[int], Awaitable[V]]) -> V:
        """`read(ticket)`'s result for `key`, or that of the same read in flight."""
        return await self._shared(key, read, again=True)

    async def _shared(self, key: K, read: Callable[[int], Awaitable[V]], *, again: bool) -> V:
        reading = self._reading.get(key)
        if reading is not None and reading[0] == self._generation():
            self.shared += 1
            try:
                return await asyncio.shield(reading[1])
            except Exception:
                if not again:
                    raise
                log.debug("a shared read failed; reading again")
                return await self._shared(key, read, again=False)
        self.reads += 1
        ticket = self._generation()
        task = asyncio.create_task(self._run(key, read, ticket))
        self._reading[key] = (ticket, task)
        # Shielded: a caller that is cancelled must not cancel the read others share.
        return await asyncio.shield(task)

    async def _run(self, key: K, read: Callable[[int], Awaitable[V]], ticket: int) -> V:
        try:
            return await read(ticket)
        finally:
            reading = self._reading.get(key)
            if reading is not None and reading[1] is asyncio.current_task():
                del self._reading[key]
