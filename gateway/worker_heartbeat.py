"""The delivery worker's heartbeat: how the health of a `serve --role api` process sees it.

Only the "all" process runs the delivery worker, yet an "api" process beside it answers health
too, and whoever watches that health must learn when nothing delivers what it accepts. So the
"all" process writes its worker's state into the database every `BEAT_SECONDS`, and once more,
stopped, as it shuts down. An "api" process reports the last beat (`running` says at once
that the worker stopped), and the worker as down when there is none or it is older than
`STALE_AFTER`: the process died, hangs, or was stopped and not started again. A restart takes
seconds, so it does not make every "api" process answer 503 meanwhile (they go on accepting;
the messages wait in the outbox).

The beat's time is the writer's clock, read against the reader's: processes on several
machines need their clocks in step (NTP); the minute's slack absorbs ordinary drift.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.api.keys import WorkerStatus
from storage.models import WorkerHeartbeat
from storage.repositories import heartbeats

log = logging.getLogger(__name__)

NAME = "delivery"
BEAT_SECONDS = 15
# Four beats missed: one slow commit or a busy moment does not make the worker look down.
STALE_AFTER = timedelta(seconds=4 * BEAT_SECONDS)


class Heartbeat:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        worker: Callable[[], WorkerStatus],
        clock: Callable[[], datetime],
    ) -> None:
        """`worker()`: the worker's state now (DeliveryWorker.state)."""
        self._sessionmaker = sessionmaker
        self._worker = worker
        self._clock = clock
        # One beat at a time, and none after the stopped one: a beat still running at
        # shutdown must not write "running" over it.
        self._lock = asyncio.Lock()
        self._stopped = False

    async def beat(self, *, stopped: bool = False) -> bool:
        """Write the worker's state (as stopped, at shutdown: the last beat); whether it was
        written. A failure is logged, not raised: the next beat tries again, and a missed one
        shows."""
        async with self._lock:
            if self._stopped:
                return False
            self._stopped = stopped
            state = self._worker()
            try:
                async with self._sessionmaker() as session:
                    await heartbeats.beat(
                        session,
                        NAME,
                        at=self._clock(),
                        running=state.running and not stopped,
                        last_run_at=state.last_run_at,
                        last_error=state.last_error,
                        unknown_send_outcomes=state.unknown_send_outcomes,
                    )
                    await session.commit()
            except Exception as exc:
                log.warning("worker heartbeat not written: %s", type(exc).__name__)
                return False
            return True


def fresh(last: WorkerHeartbeat | None, now: datetime) -> bool:
    """Whether the last beat says a worker runs (or restarts): there is one, not stale."""
    return last is not None and now - last.beat_at <= STALE_AFTER
