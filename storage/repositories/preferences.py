"""A person's stored preferences (one row, created on their first change)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import UserPreferences


async def for_update(session: AsyncSession, user_id: int) -> UserPreferences:
    """The person's row, created with every default if they never changed anything."""
    row = await session.get(UserPreferences, user_id)
    if row is None:
        row = UserPreferences(user_id=user_id)  # the column defaults fill in at flush
        session.add(row)
        await session.flush()
    return row
