"""Worker heartbeats: written by the process that runs the worker, read by the others."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
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
    """Record the worker's state as of `at`, over its previous beat (one row per name), in one
    statement: a read-then-write could lose to a concurrent first beat."""
    values: dict[str, Any] = {
        "beat_at": at,
        "running": running,
        "last_run_at": last_run_at,
        "last_error": last_error,
        "unknown_send_outcomes": unknown_send_outcomes,
    }
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(WorkerHeartbeat).values(name=name, **values)
    await session.execute(
        statement.on_conflict_do_update(index_elements=[WorkerHeartbeat.name], set_=values)
    )


async def last(session: AsyncSession, name: str) -> WorkerHeartbeat | None:
    return await session.get(WorkerHeartbeat, name)
