"""Work that comes due at times kept in the database, run on APScheduler at those times.

The database is the schedule; APScheduler only holds the timer for the earliest due time. So
nothing is lost with the process: at start the earliest time is read back (and, if it passed
while the gateway was down, the work runs at once), callers that add work may move the timer
earlier, and a periodic sweep is the safety net for anything else (including work added by
other processes).

Times come from an injected clock; APScheduler's timers are real time, so a due time is turned
into a real delay from the clock's "now".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from storage.types import utcnow

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


class DueWork:
    def __init__(
        self,
        scheduler: AsyncIOScheduler,
        name: str,
        work: Callable[[], Awaitable[int]],
        next_due: Callable[[], Awaitable[datetime | None]],
        *,
        clock: Clock = utcnow,
        sweep_interval: timedelta = timedelta(seconds=30),
        batch_size: int = 500,
    ) -> None:
        """`work()` does one batch of what is due and returns how many items it handled (a
        full batch means: run again); `next_due()` is the earliest due time still pending."""
        self.name = name
        self._scheduler = scheduler
        self._work = work
        self._next_due = next_due
        self._clock = clock
        self._sweep_interval = sweep_interval
        self._batch_size = batch_size
        self._lock = asyncio.Lock()

    @property
    def timer_job(self) -> str:
        return f"{self.name}-timer"

    async def start(self) -> None:
        """Schedule the sweep and the first run. The scheduler must be running."""
        self._scheduler.add_job(
            self.run,
            "interval",
            seconds=self._sweep_interval.total_seconds(),
            id=f"{self.name}-sweep",
            replace_existing=True,
            coalesce=True,
        )
        await self._schedule_next()

    def due_at(self, when: datetime) -> None:
        """Something is due at `when`: make sure a run happens then (or earlier)."""
        run_date = datetime.now(UTC) + (when - self._clock())
        job = self._scheduler.get_job(self.timer_job)
        # A job added before the scheduler started has no next_run_time yet.
        next_run = getattr(job, "next_run_time", None)
        if next_run is not None and next_run <= run_date:
            return
        self._scheduler.add_job(
            self.run,
            "date",
            run_date=run_date,
            id=self.timer_job,
            replace_existing=True,
            misfire_grace_time=None,  # late is better than never (e.g. after a suspend)
            # run() re-arms the timer while it is itself the running timer job; with the
            # default of one instance APScheduler would skip that new run. The lock in run()
            # keeps two runs from overlapping anyway.
            max_instances=2,
        )

    async def run(self) -> int:
        """Everything due now, batch after batch; then the timer for what comes next."""
        handled = 0
        async with self._lock:  # the timer and the sweep must not run the same work twice
            try:
                while True:
                    count = await self._work()
                    handled += count
                    if count < self._batch_size:
                        break
            except Exception as exc:
                # Class only: the text could quote SQL parameters. The sweep tries again.
                log.error("%s failed: %s", self.name, type(exc).__name__)
        try:
            when = await self._next_due()
        except Exception as exc:
            log.error("%s: next due time unknown: %s", self.name, type(exc).__name__)
            return handled
        if when is not None:
            if handled == 0 and when <= self._clock():
                # Due but nothing could be done (e.g. another process holds it): no timer at
                # once, or this would spin; the sweep comes back to it.
                return handled
            self.due_at(when)
        return handled

    async def _schedule_next(self) -> None:
        when = await self._next_due()
        if when is not None:
            self.due_at(when)


class OnSchedule:
    """For classes whose work runs on a DueWork (`self._due`): start it, tell it of new due
    times, run it now."""

    _due: DueWork

    async def start(self) -> None:
        """Schedule the sweep and the first run. The scheduler must be running."""
        await self._due.start()

    def due_at(self, when: datetime) -> None:
        """Something comes due at `when`."""
        self._due.due_at(when)

    async def run(self) -> int:
        return await self._due.run()
