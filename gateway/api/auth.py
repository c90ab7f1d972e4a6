"""Bearer-token authentication for every API route except the public ones (health)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from aiohttp import web

from gateway.api.errors import Handler, error_response
from gateway.api.keys import AUTHENTICATED, CLOCK, SESSIONMAKER, TOKEN_CACHE
from gateway.token_cache import VerifiedToken
from gateway.tokens import hash_token, looks_like_token
from storage.repositories import tokens
from storage.unavailable import database_unavailable

log = logging.getLogger(__name__)

PUBLIC_PATHS = frozenset({"/api/v1/communication/health", "/api/v1/openapi.json"})
# RFC 8058: a mail provider posts to the unsubscribe link with no credentials; the unguessable
# token in the path is the authorisation.
PUBLIC_PREFIXES = ("/api/v1/communication/unsubscribe/",)
# Writing last_used_at on every request would turn each read into a write; a minute is precise
# enough for a person deciding which token to revoke.
_TOUCH_EVERY = timedelta(minutes=1)


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if (
        request.path in PUBLIC_PATHS
        or request.path.startswith(PUBLIC_PREFIXES)
        or not request.path.startswith("/api/")
    ):
        return await handler(request)
    secret = _bearer(request)
    if secret is None:
        return error_response(
            401, "unauthorized", "send your token as 'Authorization: Bearer lgp_...'"
        )
    if not looks_like_token(secret):
        return error_response(401, "unauthorized", "unknown or revoked token")
    now = request.app[CLOCK]()
    digest = hash_token(secret)
    cache = request.app[TOKEN_CACHE]
    token = cache.get(digest, now)
    if token is None or _stale(token.last_used_at, now):
        token = await cache.lookups.read(digest, lambda ticket: _look_up(request, digest, ticket))
        if token is None:
            return error_response(401, "unauthorized", "unknown or revoked token")
    request[AUTHENTICATED] = token
    return await handler(request)


async def _look_up(request: web.Request, digest: str, ticket: int) -> VerifiedToken | None:
    """The token from the database, kept in the cache unless revoked meanwhile."""
    now = request.app[CLOCK]()
    token = await _verify(request, digest, now)
    if token is not None:
        request.app[TOKEN_CACHE].put(digest, token, now, ticket)
    return token


def _stale(last_used_at: datetime | None, now: datetime) -> bool:
    return last_used_at is None or now - last_used_at > _TOUCH_EVERY


async def _verify(request: web.Request, digest: str, now: datetime) -> VerifiedToken | None:
    """The active token with this hash from the database (touching last_used_at), or None."""
    async with request.app[SESSIONMAKER]() as session:
        row = await tokens.active_by_hash(session, digest)
        if row is None:
            return None
        token = VerifiedToken(row.id, row.owner_id, row.last_used_at)
        if not _stale(row.last_used_at, now):
            return token
        row.last_used_at = now
        try:
            await session.commit()
        except Exception as exc:
            if not database_unavailable(exc):
                raise
            # The token was read: a request (a GET, say) is not to fail for want of writing
            # when it was used. Cached as if written, the next try is a minute on, not at
            # the very next request.
            log.warning("last use of token %s not written: %s", token.id, type(exc).__name__)
        return VerifiedToken(token.id, token.owner_id, now)
