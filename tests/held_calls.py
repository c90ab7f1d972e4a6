"""An async function held until the test lets it go, for tests of what waits on it meanwhile."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest


class HeldCalls:
    """`owner.name` replaced for the test: each call is counted, waits until `release` is set,
    then raises (the first `failing` calls) or does what the real one does."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, owner: object, name: str) -> None:
        self.begun = 0
        self.failing = 0
        self.release = asyncio.Event()
        self._real = getattr(owner, name)
        monkeypatch.setattr(owner, name, self._call)

    async def _call(self, *args: Any, **kwargs: Any) -> Any:
        self.begun += 1
        await self.release.wait()
        if self.begun <= self.failing:
            raise OSError("the database is busy")
        return await self._real(*args, **kwargs)
