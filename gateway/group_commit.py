"""Group commit: concurrent submissions share one transaction.

Each accepted message must be committed before its 202, but one transaction per request makes
the database's commit the bottleneck. Requests hand their new row to the `GroupCommitter` and
wait; while one batch commits, the next gathers, so under load each commit carries many rows
and a lone request still commits at once (no waiting for company). A batch that breaks a
constraint (two requests with the same idempotency key) is retried row by row, so only the
offending row fails.

Under more load than the database can commit, rows would wait ever longer, and a client that
gives up waiting (its 202 still to come) and sends again without an idempotency key would send
twice. Past `max_pending` rows waiting for a batch, a new one is refused at once (`Overloaded`:
the API answers 503 with Retry-After) rather than queued.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.batching import Batcher, Pending
from storage import commit_watch
from storage.repositories.messages import NewMessage, insert_new

log = logging.getLogger(__name__)

MAX_BATCH = 500
# Rows waiting for their batch before new ones are refused: ten full batches, some hundreds of
# milliseconds of commits; far more than the requests a process has in flight normally.
MAX_PENDING = 10 * MAX_BATCH
# While refusing, a warning at most this often (seconds), with the count since the last.
REFUSALS_LOGGED_EVERY = 10.0


class Overloaded(Exception):
    """More rows wait for their commit than `max_pending`: this one was not taken."""


class GroupCommitter(Batcher[NewMessage, None]):
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        max_batch: int = MAX_BATCH,
        max_pending: int = MAX_PENDING,
        announce: bool = False,
    ) -> None:
        """`announce`: each commit tells a listening process that new messages are in
        (PostgreSQL's NOTIFY, see storage.commit_watch), for a process whose worker is
        elsewhere."""
        super().__init__(max_batch=max_batch, name="group-commit")
        self._sessionmaker = sessionmaker
        self._max_pending = max_pending
        self._announce = announce
        self.commits = 0  # transactions so far (for benchmarks)
        self.rows = 0
        self.refused = 0  # rows refused as Overloaded so far
        self._refusals_logged = 0  # of `refused`, as of the last warning
        self._refusals_logged_at = float("-inf")  # event loop time of that warning

    async def commit(self, message: NewMessage) -> None:
        """Return once `message` is committed; raises what its commit raised, or
        `Overloaded` (nothing done) when too many rows wait already."""
        if self.backlog >= self._max_pending:
            self._refuse()
            raise Overloaded
        await self._submit(message)

    def _refuse(self) -> None:
        self.refused += 1
        now = asyncio.get_running_loop().time()
        if now - self._refusals_logged_at >= REFUSALS_LOGGED_EVERY:
            log.warning(
                "overloaded: %d message(s) refused since the last warning, %d waiting to commit",
                self.refused - self._refusals_logged,
                self.backlog,
            )
            self._refusals_logged, self._refusals_logged_at = self.refused, now

    async def _handle(self, batch: Sequence[Pending[NewMessage, None]]) -> None:
        try:
            await self._commit([pending.item for pending in batch])
        except IntegrityError:
            # Two requests with the same idempotency key, say: only the offending row fails.
            await self._one_by_one(batch, lambda message: self._commit([message]))
            return
        for pending in batch:
            pending.answer(None)

    async def _commit(self, messages: Sequence[NewMessage]) -> None:
        async with self._sessionmaker() as session:
            await insert_new(session, messages)
            if self._announce:
                await commit_watch.announce(session)
            await session.commit()
        self.commits += 1
        self.rows += len(messages)
