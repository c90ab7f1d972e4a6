"""Token lookups by the API under load: shared while in flight, never kept past a revocation."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import ClientResponse

from gateway.api import auth
from gateway.api.keys import TOKEN_CACHE
from tests.api.conftest import Client, Person
from tests.held_calls import HeldCalls
from tests.waiting import eventually

CHANNELS = "/api/v1/communication/channels"


async def _requests(
    api: Client, person: Person, held: HeldCalls, count: int
) -> list[asyncio.Task[ClientResponse]]:
    """`count` requests at once, each at the lookup (begun, or joined) when this returns."""
    sent = [asyncio.create_task(api.get(CHANNELS, headers=person.auth)) for _ in range(count)]
    lookups = api.app[TOKEN_CACHE].lookups
    await eventually(
        lambda: held.begun == 1 and lookups.shared == count - 1,
        within=10,
        what="the requests at the lookup",
    )
    return sent


async def test_requests_that_need_the_same_token_share_one_lookup(
    api: Client, person: Person, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = HeldCalls(monkeypatch, auth.tokens, "active_by_hash")
    sent = await _requests(api, person, held, 10)
    held.release.set()
    assert [(await s).status for s in sent] == [200] * 10
    assert held.begun == 1
    assert api.app[TOKEN_CACHE].lookups.shared == 9


async def test_a_token_revoked_during_its_lookup_is_not_cached(
    api: Client, person: Person, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = HeldCalls(monkeypatch, auth.tokens, "active_by_hash")
    sent = await _requests(api, person, held, 1)
    cache = api.app[TOKEN_CACHE]
    cache.forget_token(person.token_id)  # as the bot's revoke does, before the lookup ends
    held.release.set()
    assert (await sent[0]).status == 200  # it read the token active
    again = await api.get(CHANNELS, headers=person.auth)
    assert again.status == 200
    assert held.begun == 2  # looked up again: the first lookup's result was not kept
