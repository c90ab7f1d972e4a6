"""Outgoing HTTP to addresses people give us (webhook endpoints, push servers) must reach the
public internet only: never this machine, the private network or cloud metadata services.

Checking the URL when it is registered is not enough: a name can resolve (or later rebind) to a
private address, and numeric hosts come in many spellings (0x7f.0.0.1, 127.1). So the check is
made where the connection is made, on the addresses the name resolved to: a resolver that
refuses every address that is not globally routable. IP-literal hosts do not go through the
resolver; the URL validators refuse those that are not public.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver


class NotPublicAddress(OSError):
    """The host resolved to no public address (aiohttp reports it as a connection error)."""


def is_public(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    return ip.is_global and not ip.is_multicast


class PublicOnlyResolver(AbstractResolver):
    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        public = [r for r in found if is_public(r["host"])]
        if not public:
            raise NotPublicAddress("the host has no public address")
        return public

    async def close(self) -> None:
        await self._inner.close()


def public_session(*, allow_local: bool = False, **options: Any) -> aiohttp.ClientSession:
    """A session whose connections reach public addresses only (anything with `allow_local`,
    for the sandbox and tests), keeping no cookies and ignoring proxy variables."""
    connector = aiohttp.TCPConnector(resolver=None if allow_local else PublicOnlyResolver())
    return aiohttp.ClientSession(
        connector=connector, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False, **options
    )
