"""`serve --role api`: processes that serve only the HTTP API beside the one "all" process,
on the same database: what they accept, its worker delivers; with SO_REUSEPORT they share
the port."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import pytest

from gateway.api.keys import SUBMITTER, TOKEN_CACHE
from gateway.roles import ROLES
from gateway.runtime import API_ROLE_CACHE_TTL, build_gateway
from gateway.worker_heartbeat import STALE_AFTER
from tests.e2e.conftest import Running, free_port, gateway_running

SEND = "/api/v1/communication/send"
HEALTH = "/api/v1/communication/health"


async def _worker_ok(running: Running, api_url: str) -> dict[str, Any]:
    """The api process's health once it sees the worker (the all process beats on a timer of
    its own; each look asks Telegram, getMe, too)."""
    return await running.json_when(api_url + HEALTH, lambda h: h["worker"]["ok"], every=0.05)


# On SQLite the all process sees the api process's commit in the file; on PostgreSQL it hears
# the api process announce it (storage.commit_watch).
@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
async def test_an_api_process_accepts_what_the_all_process_delivers(running: Running) -> None:
    _user, group, token = await running.person_with_log()
    assert running.config is not None
    # The worker's poll so long that only the commit watch can wake it in time.
    await running.stop_gateway()
    running.config = dataclasses.replace(running.config, worker_poll_interval=60)
    await running.start_gateway()
    api_port = free_port()
    api_config = dataclasses.replace(running.config, role="api", http_port=api_port)
    async with gateway_running(api_config, running.clock):
        api_url = f"http://127.0.0.1:{api_port}"
        # None runs there: it reports the all process's, from its heartbeat.
        health = await _worker_ok(running, api_url)
        assert health["status"] == "ok", health
        body = {"category": "system", "content": {"text": "accepted by the api process"}}
        headers = {"Authorization": f"Bearer {token}"}
        async with running.http.post(api_url + SEND, json=body, headers=headers) as resp:
            assert resp.status == 202, await resp.text()
        # The "all" process hears of the api process's commit.
        delivered = await running.world.wait_for_bot_message(
            group, lambda m: "accepted by the api process" in (m.text or ""), within=10
        )
    assert delivered.text == "accepted by the api process\n\n#system"


async def test_an_api_processs_health_sees_the_all_processs_worker_stop(running: Running) -> None:
    assert running.config is not None
    api_port = free_port()
    api_config = dataclasses.replace(running.config, role="api", http_port=api_port)
    async with gateway_running(api_config, running.clock):
        api_url = f"http://127.0.0.1:{api_port}"
        health = await _worker_ok(running, api_url)
        seen_at = datetime.fromisoformat(health["worker"]["seen_at"])
        await running.stop_gateway()
        # Its last beat says stopped, at once; a restart would come within the minute.
        async with running.http.get(api_url + HEALTH) as resp:
            health = await resp.json()
        assert resp.status == 200, health
        assert health["worker"]["running"] is False
        assert datetime.fromisoformat(health["worker"]["seen_at"]) >= seen_at
        running.clock.offset += STALE_AFTER + timedelta(seconds=1)  # none came
        async with running.http.get(api_url + HEALTH) as resp:
            health = await resp.json()
        assert resp.status == 503, health
        assert health["failing"] == ["worker"]
        assert health["worker"]["ok"] is False


async def test_with_reuse_port_the_processes_share_the_http_port(running: Running) -> None:
    assert running.config is not None
    await running.stop_gateway()
    running.config = dataclasses.replace(running.config, reuse_port=True)
    await running.start_gateway()
    api_config = dataclasses.replace(running.config, role="api")
    async with gateway_running(api_config, running.clock):
        kinds: set[bool] = set()
        # A new connection each time: the kernel spreads connections over the two sockets.
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as fresh, asyncio.timeout(10):
            while len(kinds) < 2:
                async with fresh.get(running.api_url + HEALTH) as resp:
                    health = await resp.json()
                assert health["database"]["ok"], health
                # Only the api process reports the worker as last seen (its heartbeat), and
                # as down until the all process's first beat is in.
                api_process = "seen_at" in health["worker"]
                if api_process and not health["worker"]["ok"]:
                    await asyncio.sleep(0.05)
                    continue
                assert resp.status == 200, health
                kinds.add(api_process)
    assert kinds == {True, False}  # answered by the "all" process and by the "api" one


def test_the_command_line_offers_the_runtimes_roles() -> None:
    from gateway import cli

    assert cli.ROLES == ROLES


def test_an_api_process_trusts_its_cached_tokens_and_recipients_for_seconds(
    running: Running,
) -> None:
    # The bot's revocations and changes reach the caches of its own process at once; an api
    # process hears of none, so what it read expires within API_ROLE_CACHE_TTL.
    assert running.config is not None
    for role, expected in (("all", 30.0), ("api", API_ROLE_CACHE_TTL.total_seconds())):
        gw = build_gateway(dataclasses.replace(running.config, role=role))
        assert gw.api[TOKEN_CACHE]._ttl.total_seconds() == expected
        assert gw.api[SUBMITTER].recipients._ttl == (60.0 if role == "all" else expected)


def test_only_an_api_process_on_postgresql_announces_its_commits(running: Running) -> None:
    # On SQLite the all process sees every commit in the file; on PostgreSQL it hears only
    # what is announced (storage.commit_watch), and its own worker is woken directly.
    assert running.config is not None
    postgresql = "postgresql+asyncpg://u:p@127.0.0.1:1/never_connected"
    for role, url, expected in (
        ("api", postgresql, True),
        ("all", postgresql, False),
        ("api", running.config.database_url, False),
        ("all", running.config.database_url, False),
    ):
        gw = build_gateway(dataclasses.replace(running.config, role=role, database_url=url))
        assert gw.api[SUBMITTER].committer._announce is expected, (role, url)
