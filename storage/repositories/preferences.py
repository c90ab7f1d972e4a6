"""A person's stored preferences (one row, created on their first change)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import UserPreferences


async def for_update(session: AsyncSession, user_id: int) -> UserPreferences:
    """The person's row, created with every default if they never changed anything."""
    row = await session.get(UserPreferences, user_id)
    if row is None:
        row = UserPreferences(
            user_id=user_id,
            categories={},
            channel_order=[],
            disabled_channels=[],
            quiet_enabled=True,
            quiet_start="22:00",
            quiet_end="08:00",
            timezone="Asia/Tokyo",
            quiet_mode="silent",
            urgent_bypass=True,
            default_ephemeral=False,
            read_receipts=False,
        )
        session.add(row)
        await session.flush()
    return row
