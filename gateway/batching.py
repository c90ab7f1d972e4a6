"""Work of concurrent callers handled in batches: the ground of the group commits.

A caller hands in its item and waits for its result. While one batch is handled, the items
handed in meanwhile gather for the next, so under load each batch carries many items, and a
lone item is handled at once (no waiting for company).
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Pending(Generic[T, R]):
    """An item handed in, and its caller waiting for the result."""

    item: T
    done: asyncio.Future[R]

    def answer(self, result: R) -> None:
        if not self.done.done():
            self.done.set_result(result)

    def fail(self, error: BaseException) -> None:
        if not self.done.done():
            self.done.set_exception(error)


class Unanswered(RuntimeError):
    """A batch's handling ended without answering this item's caller (a bug)."""


class Batcher(ABC, Generic[T, R]):
    def __init__(self, *, max_batch: int, name: str) -> None:
        self._max_batch = max_batch
        self._name = name
        self._pending: list[Pending[T, R]] = []
        self._flusher: asyncio.Task[None] | None = None

    @property
    def backlog(self) -> int:
        """Items waiting for a batch (not counting those of the batch handled now)."""
        return len(self._pending)

    @abstractmethod
    async def _handle(self, batch: Sequence[Pending[T, R]]) -> None:
        """Handle the batch and answer each of its callers; an exception raised here goes to
        every caller not answered yet."""

    async def _submit(self, item: T) -> R:
        done: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        pending = Pending(item, done)
        self._pending.append(pending)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name=self._name)
        # Shielded: a caller cancelled (a client hanging up, say) must not cancel the others'.
        return await asyncio.shield(pending.done)

    async def _flush(self) -> None:
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            try:
                await self._handle(batch)
            except Exception as exc:  # the database is down, say: every caller hears of it
                for pending in batch:
                    pending.fail(exc)
            for pending in batch:
                pending.fail(Unanswered(self._name))

    @staticmethod
    async def _one_by_one(batch: Sequence[Pending[T, R]], run: Callable[[T], Awaitable[R]]) -> None:
        """Each item on its own (the batch as a whole failed, for one of them perhaps), each
        caller answered as soon as its own is done."""
        for pending in batch:
            try:
                result = await run(pending.item)
            except Exception as exc:
                pending.fail(exc)
            else:
                pending.answer(result)
