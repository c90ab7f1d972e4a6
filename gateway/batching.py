"""Work of concurrent callers handled in batches: the ground of the group commits.

A caller hands in its item and waits for its result. While one batch is handled, the items
handed in meanwhile gather for the next, so under load each batch carries many items, and a
lone item is handled at once (no waiting for company).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    def __init__(self, *, max_batch: int, name: str) -> None:
        self._max_batch = max_batch
        self._name = name
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._flusher: asyncio.Task[None] | None = None

    @property
    def backlog(self) -> int:
        """Items waiting for a batch (not counting those of the batch handled now)."""
        return len(self._pending)

    async def _handle(self, items: Sequence[T]) -> Sequence[R | BaseException]:
        """Each item's result, or the exception its caller gets, in order; an exception raised
        here goes to every caller of the batch."""
        raise NotImplementedError

    async def _submit(self, item: T) -> R:
        done: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name=self._name)
        # Shielded: a caller cancelled (a client hanging up, say) must not cancel the others'.
        return await asyncio.shield(done)

    async def _flush(self) -> None:
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            results: Sequence[R | BaseException]
            try:
                results = await self._handle([item for item, _ in batch])
            except Exception as exc:  # the database is down, say: every caller hears of it
                results = [exc] * len(batch)
            for (_, done), result in zip(batch, results, strict=True):
                if done.done():
                    continue
                if isinstance(result, BaseException):
                    done.set_exception(result)
                else:
                    done.set_result(result)
