"""GET /health: is each dependency working? 200 if all are, else 503 naming what is not."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy import text

from gateway.api.keys import (
    BOT,
    CHANNEL_STATUSES,
    CLOCK,
    DELETIONS,
    DELIVERY,
    SCHEDULER,
    SESSIONMAKER,
    WorkerStatus,
)
from gateway.deletion import OVERDUE_GRACE
from gateway.worker_heartbeat import NAME as WORKER_NAME
from gateway.worker_heartbeat import fresh
from storage.models import WorkerHeartbeat
from storage.repositories import copies, heartbeats
from storage.repositories.messages import queue_depth

log = logging.getLogger(__name__)

_CHECK_TIMEOUT = 5.0


@dataclass(frozen=True)
class _Stored:
    queue_depth: int
    pending: copies.Pending
    # Read where no worker runs in this process (serve --role api): the worker's last beat.
    beat: WorkerHeartbeat | None


async def _database(request: web.Request) -> _Stored:
    async with request.app[SESSIONMAKER]() as session:
        await session.execute(text("SELECT 1"))
        overdue_before = request.app[CLOCK]() - OVERDUE_GRACE
        here = request.app[DELIVERY] is not None
        return _Stored(
            await queue_depth(session),
            await copies.pending(session, overdue_before),
            None if here else await heartbeats.last(session, WORKER_NAME),
        )


def _deletions(request: web.Request, pending: copies.Pending) -> dict[str, Any]:
    stats = request.app[DELETIONS]
    return {
        "pending": pending.count,
        "overdue": pending.overdue,
        "oldest_due": pending.oldest_due.isoformat() if pending.oldest_due else None,
        "deleted": stats.deleted,
        "given_up": stats.given_up,
        "last_lateness_seconds": stats.last_lateness_seconds,
        "max_lateness_seconds": stats.max_lateness_seconds,
    }


def _worker(worker: WorkerStatus) -> dict[str, Any]:
    return {
        "ok": worker.running,
        "last_error": worker.last_error,
        "last_run_at": worker.last_run_at.isoformat() if worker.last_run_at else None,
        # Telegram sends whose outcome was unknowable (a timeout or a broken connection after
        # the request went out): each may have been delivered twice.
        "unknown_send_outcomes": worker.unknown_send_outcomes,
    }


def _worker_seen(beat: WorkerHeartbeat | None, now: datetime) -> dict[str, Any]:
    """The worker of the "all" process as its last beat tells (gateway.worker_heartbeat)."""
    if beat is None:
        never = {"last_error": None, "last_run_at": None, "unknown_send_outcomes": 0}
        return {**never, "ok": False, "running": False, "seen_at": None}
    return {
        **_worker(beat),
        "ok": fresh(beat, now),
        "running": beat.running,
        "seen_at": beat.beat_at.isoformat(),
    }


async def health(request: web.Request) -> web.Response:
    body: dict[str, Any] = {}
    failing: list[str] = []
    stored: _Stored | None = None
    try:
        async with asyncio.timeout(_CHECK_TIMEOUT):
            stored = await _database(request)
        body["database"] = {"ok": True}
        body["queue_depth"] = stored.queue_depth
        body["deletions"] = _deletions(request, stored.pending)
    except Exception as exc:
        log.warning("health: database check failed: %s", type(exc).__name__)
        body["database"] = {"ok": False, "error": type(exc).__name__}
        failing.append("database")
    try:
        async with asyncio.timeout(_CHECK_TIMEOUT):
            me = await request.app[BOT].get_me()
        body["telegram"] = {"ok": True, "username": me.username}
    except Exception as exc:
        log.warning("health: telegram check failed: %s", type(exc).__name__)
        body["telegram"] = {"ok": False, "error": type(exc).__name__}
        failing.append("telegram")
    delivery = request.app[DELIVERY]
    if delivery is not None:
        body["worker"] = _worker(delivery.state())
    elif stored is not None:
        # None runs in this process (serve --role api): the "all" process's, as it last
        # wrote. Without the database that is unknown, and the database is reported failing
        # already.
        body["worker"] = _worker_seen(stored.beat, request.app[CLOCK]())
    if "worker" in body and not body["worker"]["ok"]:
        failing.append("worker")
    # Fallback channels as last checked: a configured one whose check failed degrades health.
    body["channels"] = {}
    for status in request.app[CHANNEL_STATUSES]():
        if not status.configured:
            continue
        body["channels"][status.channel.value] = {"ok": status.healthy, "error": status.error}
        if status.healthy is False:
            failing.append(f"channel:{status.channel.value}")
    scheduler = request.app[SCHEDULER]
    if scheduler is not None:
        # Quiet-hours releases, scheduled deletions and retention all run on it.
        body["scheduler"] = {"ok": scheduler.running}
        if not scheduler.running:
            failing.append("scheduler")
    body["status"] = "ok" if not failing else "degraded"
    if failing:
        body["failing"] = failing
    return web.json_response(body, status=200 if not failing else 503)
