"""The bot's pending updates and getUpdates' long polling (offset, limit, timeout, filters)."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Any

from sandbox.errors import BotAPIError
from sandbox.notify import ChangeSignal

UPDATE_TYPES_BY_DEFAULT_OFF = frozenset(
    {"chat_member", "message_reaction", "message_reaction_count"}
)
FIRST_UPDATE_ID = 100_000_001


@dataclass(frozen=True)
class PendingUpdate:
    update_id: int
    kind: str
    payload: dict[str, Any]

    def render(self) -> dict[str, Any]:
        return {"update_id": self.update_id, self.kind: self.payload}


class UpdateQueue:
    """Updates wait here until a getUpdates call with a higher offset confirms them."""

    def __init__(self) -> None:
        self._pending: deque[PendingUpdate] = deque()
        self._next_id = FIRST_UPDATE_ID
        self._event = asyncio.Event()
        self._poll_generation = 0
        self._closing = False
        self.allowed_updates: list[str] | None = None
        self.parked = ChangeSignal()
        """Bumped each time a long poll starts waiting (lets tests sequence requests)."""

    def wants(self, kind: str) -> bool:
        if not self.allowed_updates:
            return kind not in UPDATE_TYPES_BY_DEFAULT_OFF
        return kind in self.allowed_updates

    def push(self, kind: str, payload: dict[str, Any]) -> None:
        """Queue an update unless the bot's allowed_updates exclude its type (as Telegram does)."""
        if not self.wants(kind):
            return
        self._pending.append(PendingUpdate(self._next_id, kind, payload))
        self._next_id += 1
        self._wake()

    def drop_all(self) -> None:
        self._pending.clear()

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    def close(self) -> None:
        """Release every waiting long poll (server shutdown)."""
        self._closing = True
        self._wake()

    def _wake(self) -> None:
        event, self._event = self._event, asyncio.Event()
        event.set()

    def _confirm(self, offset: int) -> None:
        if offset < 0:
            while len(self._pending) > -offset:
                self._pending.popleft()
            return
        while self._pending and self._pending[0].update_id < offset:
            self._pending.popleft()

    def _take(self, limit: int) -> list[dict[str, Any]]:
        # Updates of types the bot no longer wants are dropped, never delivered.
        kept = deque(u for u in self._pending if self.wants(u.kind))
        self._pending = kept
        return [u.render() for u in list(kept)[:limit]]

    async def get_updates(
        self,
        *,
        offset: int | None,
        limit: int,
        poll_seconds: float,
        allowed_updates: list[str] | None,
    ) -> list[dict[str, Any]]:
        if allowed_updates is not None:
            self.allowed_updates = list(allowed_updates)
        if offset is not None:
            self._confirm(offset)
        self._poll_generation += 1
        generation = self._poll_generation
        self._wake()  # an older long poll still waiting is terminated, as in Telegram
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(poll_seconds, 0.0)
        while True:
            if generation != self._poll_generation:
                raise BotAPIError(
                    409,
                    "Conflict: terminated by other getUpdates request; "
                    "make sure that only one bot instance is running",
                )
            updates = self._take(limit)
            remaining = deadline - loop.time()
            if updates or remaining <= 0 or self._closing:
                return updates
            event = self._event
            self.parked.bump()
            try:
                async with asyncio.timeout(remaining):
                    await event.wait()
            except TimeoutError:
                return self._take(limit) if generation == self._poll_generation else []
