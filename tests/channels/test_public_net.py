"""Webhook and push connections reach public addresses only, however the host is spelled."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.channels.public_net import NotPublicAddress, PublicOnlyResolver, public_session

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]


@pytest.mark.parametrize(
    "host",
    ["localhost", "0x7f.0.0.1", "127.1", "0", "10.0.0.1", "169.254.169.254", "::1"],
)
async def test_names_and_spellings_of_private_addresses_are_refused(host: str) -> None:
    resolver = PublicOnlyResolver()
    # Refused, or not resolvable here at all: never a private address to connect to.
    with pytest.raises((NotPublicAddress, socket.gaierror)) as refused:
        await resolver.resolve(host, 443)
    if host in ("localhost", "0x7f.0.0.1", "127.1", "10.0.0.1", "169.254.169.254"):
        assert isinstance(refused.value, NotPublicAddress)
    await resolver.close()


async def test_a_public_address_resolves() -> None:
    resolver = PublicOnlyResolver()
    [found] = await resolver.resolve("8.8.8.8", 443)
    assert found["host"] == "8.8.8.8"
    await resolver.close()


async def test_a_session_cannot_reach_this_machine_by_name(aiohttp_server: ServerFactory) -> None:
    async def ok(_request: web.Request) -> web.Response:
        return web.Response(text="reached")

    app = web.Application()
    app.router.add_get("/", ok)
    server = await aiohttp_server(app)
    url = f"http://localhost:{server.port}/"
    async with public_session() as http:
        with pytest.raises(aiohttp.ClientConnectorError):
            await http.get(url)
    async with public_session(allow_local=True) as http, http.get(url) as resp:
        assert await resp.text() == "reached"  # the sandbox may
