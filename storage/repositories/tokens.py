"""API tokens: looked up by hash, listed by prefix, revoked by their owner."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import ApiToken


async def add(
    session: AsyncSession, owner_id: int, token_hash: str, prefix: str, scopes: list[str]
) -> ApiToken:
    token = ApiToken(owner_id=owner_id, token_hash=token_hash, prefix=prefix, scopes=scopes)
    session.add(token)
    await session.flush()
    return token


async def active_by_hash(session: AsyncSession, token_hash: str) -> ApiToken | None:
    result: ApiToken | None = await session.scalar(
        select(ApiToken).where(ApiToken.token_hash == token_hash, ApiToken.revoked_at.is_(None))
    )
    return result


async def is_active(session: AsyncSession, token_id: int) -> bool:
    """Whether the token still exists (its owner not erased) and is not revoked."""
    found = await session.scalar(
        select(ApiToken.id).where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None))
    )
    return found is not None


async def active_of(session: AsyncSession, owner_id: int) -> Sequence[ApiToken]:
    rows = await session.scalars(
        select(ApiToken)
        .where(ApiToken.owner_id == owner_id, ApiToken.revoked_at.is_(None))
        .order_by(ApiToken.created_at, ApiToken.id)
    )
    return rows.all()


async def revoke(session: AsyncSession, owner_id: int, token_id: int, now: datetime) -> bool:
    """Revoke one of the owner's tokens; False if it is not theirs or already revoked."""
    token = await session.get(ApiToken, token_id)
    if token is None or token.owner_id != owner_id or token.revoked_at is not None:
        return False
    token.revoked_at = now
    return True
