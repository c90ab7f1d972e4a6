"""The delivery worker's heartbeat, and the health of a process that runs no worker."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.api.app import create_api_app
from gateway.content_cipher import ContentCipher
from gateway.runtime import build_bot
from gateway.worker_heartbeat import STALE_AFTER, Heartbeat
from sandbox.server import create_sandbox_app
from sandbox.state import DEFAULT_BOT_TOKEN
from storage.models import WorkerHeartbeat
from tests.api.conftest import ClientFactory, RecordingDelivery, ServerFactory
from tests.delivery.conftest import START, UTCClock

HEALTH = "/api/v1/communication/health"


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
async def test_a_beat_records_the_workers_state_over_the_last(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    worker, clock = RecordingDelivery(), UTCClock()
    heartbeat = Heartbeat(sessionmaker, worker.state, clock)
    assert await heartbeat.beat()
    worker.last_run_at, worker.last_error, worker.unknown_send_outcomes = START, "OSError", 2
    clock.now += timedelta(seconds=15)
    assert await heartbeat.beat()
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(WorkerHeartbeat)) == 1
        row = await session.get(WorkerHeartbeat, "delivery")
    assert row is not None
    assert (row.beat_at, row.running, row.last_run_at) == (clock.now, True, START)
    assert (row.last_error, row.unknown_send_outcomes) == ("OSError", 2)
    assert await heartbeat.beat(stopped=True)
    # A beat that comes after the last one (it was under way at shutdown) writes nothing.
    clock.now += timedelta(seconds=15)
    assert not await heartbeat.beat()
    async with sessionmaker() as session:
        row = await session.get(WorkerHeartbeat, "delivery")
    assert row is not None
    assert (row.running, row.beat_at) == (False, clock.now - timedelta(seconds=15))


async def test_a_beat_the_database_refuses_is_logged_not_raised(
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("DROP TABLE worker_heartbeats"))
    assert not await Heartbeat(sessionmaker, RecordingDelivery().state, UTCClock()).beat()
    assert "worker heartbeat not written: OperationalError" in caplog.text


@pytest.mark.parametrize(
    ("beat", "age", "ok"),
    [
        ("running", timedelta(0), True),
        ("running", STALE_AFTER, True),
        ("running", STALE_AFTER + timedelta(seconds=1), False),  # the process died, or hangs
        # Stopped: said at once, but a restart takes seconds, not a minute.
        ("stopped", STALE_AFTER, True),
        ("stopped", STALE_AFTER + timedelta(seconds=1), False),
        (None, timedelta(0), False),  # never started
    ],
)
async def test_without_a_worker_health_reports_the_last_beat(
    aiohttp_server: ServerFactory,
    aiohttp_client: ClientFactory,
    sessionmaker: async_sessionmaker[AsyncSession],
    beat: str | None,
    age: timedelta,
    ok: bool,
) -> None:
    clock = UTCClock()
    worker = RecordingDelivery(last_run_at=START - timedelta(seconds=1))
    if beat is not None:
        assert await Heartbeat(sessionmaker, worker.state, clock).beat(stopped=beat == "stopped")
    clock.now += age
    sandbox = await aiohttp_server(create_sandbox_app())
    bot = build_bot(DEFAULT_BOT_TOKEN, str(sandbox.make_url("")).rstrip("/"))
    try:
        # No worker in this process: serve --role api.
        app = create_api_app(sessionmaker, bot, ContentCipher(b"k" * 32), None, clock=clock)
        client = await aiohttp_client(app)
        resp = await client.get(HEALTH)
        body = await resp.json()
    finally:
        await bot.session.close()
    assert resp.status == (200 if ok else 503), body
    assert body["worker"] == {
        "ok": ok,
        "running": beat == "running",
        "seen_at": START.isoformat() if beat else None,
        "last_error": None,
        "last_run_at": (START - timedelta(seconds=1)).isoformat() if beat else None,
        "unknown_send_outcomes": 0,
    }
    assert ("worker" in body.get("failing", [])) is not ok
