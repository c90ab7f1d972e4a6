"""Worker heartbeats: written by the process that runs the worker, read by the others."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import WorkerHeartbeat


async def beat(
    session: AsyncSession,
    name: str,
    *,
    at: datetime,
    running: bool,
    last_run_at: datetime | None,
    last_error: str | None,
    unknown_send_outcomes: int,
) -> None:
    """Record the worker's state as of `at`, over its previous beat (one row per name)."""
    await session.merge(
        WorkerHeartbeat(
            name=name,
            beat_at=at,
            running=running,
            last_run_at=last_run_at,
            last_error=last_error,
            unknown_send_outcomes=unknown_send_outcomes,
        )
    )


async def last(session: AsyncSession, name: str) -> WorkerHeartbeat | None:
    return await session.get(WorkerHeartbeat, name)
