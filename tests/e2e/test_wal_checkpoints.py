"""The gateway checkpoints SQLite's write-ahead log on a thread, not in its commits
(storage.wal_checkpoints)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

from gateway.runtime import build_gateway
from tests.e2e.conftest import Running
from tests.waiting import eventually

SEND = "/api/v1/communication/send"


def size_of(path: Path) -> int:
    return path.stat().st_size


async def test_its_connections_leave_checkpoints_to_the_checkpointer(running: Running) -> None:
    assert running.config is not None
    gw = build_gateway(running.config)
    try:
        assert gw.wal_of == Path(str(make_url(running.database_url).database))
        async with gw.engine.connect() as connection:
            pages = (await connection.execute(text("PRAGMA wal_autocheckpoint"))).scalar()
        assert pages == 0
    finally:
        await gw.engine.dispose()
        await gw.bot.session.close()
    postgresql = "postgresql+asyncpg://u:p@127.0.0.1:1/never_connected"
    elsewhere = build_gateway(dataclasses.replace(running.config, database_url=postgresql))
    assert elsewhere.wal_of is None
    await elsewhere.bot.session.close()


async def test_what_it_commits_reaches_the_database_file_while_it_runs(running: Running) -> None:
    # In WAL mode the database file is written only by checkpoints, and the gateway's
    # connections make none: the file grows only if the checkpointer runs.
    _user, _group, token = await running.person_with_log()
    database = Path(str(make_url(running.database_url).database))
    before = size_of(database)
    headers = {"Authorization": f"Bearer {token}"}
    for n in range(40):
        body = {"category": "system", "content": {"text": f"{n} " + "x" * 3000}}
        async with running.http.post(running.api_url + SEND, json=body, headers=headers) as resp:
            assert resp.status == 202
    await eventually(
        lambda: size_of(database) >= before + 40 * 3000,
        within=10,
        what="the log checkpointed into the database file",
    )
