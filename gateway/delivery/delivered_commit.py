"""Group commit of deliveries: the outcomes of sends that finish together share one transaction.

Each delivered message's outcome (delivered, its content wiped, its attempt and kept-copy rows)
must be committed before the worker moves on, and one transaction each, with a statement per
row, was a sixth of the worker's CPU at full speed. Sends to different chats finish in the same
turns of the event loop: their outcomes wait here, and one transaction marks them all with one
UPDATE (`outbox.settle_delivered`) and inserts their rows with one statement per table. While
one batch commits the next gathers, and a lone outcome still commits at once.

A claim lost meanwhile (the lease ran out and another worker took the message over) drops
that message's outcome and rows only: the UPDATE names each message with its claim token. A
batch the database refuses is tried again one delivery at a time, so that only the one at
fault fails; the attempt then records it once more (`Deliverer.deliver_claimed`), and only if
that fails too is it sent again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.batching import Batcher, Pending
from storage.enums import Channel
from storage.repositories import copies, outbox

MAX_BATCH = 500


@dataclass(frozen=True)
class Delivery:
    """A message sent by Telegram, to be recorded as delivered."""

    message_id: str
    token: datetime  # the claim's claimed_until: proof this worker still holds it
    attempt_rows: list[dict[str, Any]] = field(default_factory=list)
    copy_rows: list[dict[str, Any]] = field(default_factory=list)


class DeliveredCommits(Batcher[Delivery, bool]):
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Callable[[], datetime],
        *,
        max_batch: int = MAX_BATCH,
    ) -> None:
        """`clock` gives the delivery time written (that of the batch's commit)."""
        super().__init__(max_batch=max_batch, name="delivered-commit")
        self._sessionmaker = sessionmaker
        self._clock = clock
        self.commits = 0  # transactions so far (for tests and benchmarks)

    async def settle(self, delivery: Delivery) -> bool:
        """Return once the delivery is committed: True, or False if the claim was lost (then
        nothing of it was written). Raises what the batch's commit raised."""
        return await self._submit(delivery)

    async def _handle(self, batch: Sequence[Pending[Delivery, bool]]) -> None:
        try:
            held = await self._commit([pending.item for pending in batch])
        except DBAPIError:
            if len(batch) == 1:
                raise
            # A row of one delivery (or a deadlock with an erasure) must not fail the others:
            # every message of the batch is in Telegram already, and one failed here is sent
            # again. Each on its own then (the UPDATE checks each claim anew).
            await self._one_by_one(batch, self._alone)
            return
        for pending in batch:
            pending.answer(pending.item.message_id in held)

    async def _alone(self, delivery: Delivery) -> bool:
        return delivery.message_id in await self._commit([delivery])

    async def _commit(self, deliveries: Sequence[Delivery]) -> set[str]:
        """The ids of those whose claim held, marked delivered and their rows written. A
        message is in a batch once at most: its chat's deliveries go one after another."""
        async with self._sessionmaker() as session:
            held = await outbox.settle_delivered(
                session,
                [(d.message_id, d.token) for d in deliveries],
                self._clock(),
                Channel.TELEGRAM,
            )
            kept = [d for d in deliveries if d.message_id in held]
            await outbox.add_attempts(session, [row for d in kept for row in d.attempt_rows])
            await copies.insert_rows(session, [row for d in kept for row in d.copy_rows])
            await session.commit()
        self.commits += 1
        return held
