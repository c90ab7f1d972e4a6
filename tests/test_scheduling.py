"""DueWork: the timer at the earliest due time, re-armed from inside its own run, and the
sweep that comes back to work nobody scheduled."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from gateway.scheduling import DueWork


@pytest.fixture
async def scheduler() -> AsyncIterator[AsyncIOScheduler]:
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.start()
    yield scheduler
    scheduler.shutdown(wait=False)


class Work:
    """Counts its runs; `due` is what next_due reports after each run."""

    def __init__(self) -> None:
        self.runs = 0
        self.due: list[datetime | None] = []
        self.ran = asyncio.Event()

    async def __call__(self) -> int:
        self.runs += 1
        self.ran.set()
        return 1

    async def next_due(self) -> datetime | None:
        return self.due.pop(0) if self.due else None

    async def wait_runs(self, count: int) -> None:
        async with asyncio.timeout(5):
            while self.runs < count:
                self.ran.clear()
                await self.ran.wait()


async def test_work_due_in_the_past_at_start_runs_at_once(scheduler: AsyncIOScheduler) -> None:
    work = Work()
    work.due = [datetime.now(UTC) - timedelta(hours=3)]
    due = DueWork(scheduler, "w", work, work.next_due, sweep_interval=timedelta(hours=1))
    await due.start()
    await work.wait_runs(1)


async def test_a_run_re_arms_its_own_timer(scheduler: AsyncIOScheduler) -> None:
    work = Work()
    soon = lambda: datetime.now(UTC) + timedelta(milliseconds=20)  # noqa: E731
    due = DueWork(scheduler, "w", work, work.next_due, sweep_interval=timedelta(hours=1))
    # Start: due soon; after the first run something else is due soon again, then nothing.
    work.due = [soon()]
    await due.start()
    work.due = [soon()]
    await work.wait_runs(2)  # the second run comes from the timer set inside the first


async def test_the_sweep_comes_back_without_any_timer(scheduler: AsyncIOScheduler) -> None:
    work = Work()  # next_due reports nothing: only the sweep can run it
    due = DueWork(scheduler, "w", work, work.next_due, sweep_interval=timedelta(milliseconds=50))
    await due.start()
    await work.wait_runs(2)


async def test_later_due_times_never_postpone_an_earlier_timer(
    scheduler: AsyncIOScheduler,
) -> None:
    work = Work()
    due = DueWork(scheduler, "w", work, work.next_due, sweep_interval=timedelta(hours=1))
    await due.start()
    now = datetime.now(UTC)
    due.due_at(now + timedelta(hours=2))
    job = scheduler.get_job(due.timer_job)
    first = job.next_run_time
    due.due_at(now + timedelta(hours=3))
    assert scheduler.get_job(due.timer_job).next_run_time == first
    due.due_at(now + timedelta(hours=1))
    assert scheduler.get_job(due.timer_job).next_run_time < first


def test_due_at_before_the_scheduler_starts_is_kept() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    work = Work()
    due = DueWork(scheduler, "w", work, work.next_due)
    due.due_at(datetime.now(UTC) + timedelta(hours=1))
    due.due_at(datetime.now(UTC) + timedelta(minutes=5))  # a pending job: no next_run_time yet
    assert scheduler.get_job(due.timer_job) is not None
