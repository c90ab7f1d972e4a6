"""The aiohttp session an HTTP channel sends through: one it was given (its owner closes it) or
one it opens on first use, opens again if closed, and closes itself."""

from __future__ import annotations

from collections.abc import Callable

import aiohttp


class LazySession:
    def __init__(
        self,
        factory: Callable[[], aiohttp.ClientSession],
        given: aiohttp.ClientSession | None = None,
    ) -> None:
        self._factory = factory
        self._session = given
        self._owned = given is None

    def get(self) -> aiohttp.ClientSession:
        if self._session is None or (self._owned and self._session.closed):
            self._session = self._factory()
        return self._session

    async def close(self) -> None:
        """Close the session if this object opened it (a given one is its owner's to close)."""
        if self._owned and self._session is not None:
            await self._session.close()
            self._session = None
