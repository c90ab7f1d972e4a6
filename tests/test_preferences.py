"""Stored preferences map onto the routing engine's, defaults filling the gaps."""

from __future__ import annotations

from datetime import time

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.preferences import check_timezone, parse_hhmm, to_preferences
from gateway.routing import Preferences, QuietHours
from storage.enums import Category, Channel
from storage.models import User, UserPreferences


@pytest.mark.parametrize(
    ("text", "expected"),
    [("22:00", time(22)), ("7:30", time(7, 30)), (" 00:05 ", time(0, 5)), ("23:59", time(23, 59))],
)
def test_parse_hhmm(text: str, expected: time) -> None:
    assert parse_hhmm(text) == expected


@pytest.mark.parametrize("text", ["24:00", "7", "07:60", "ten", "", "7:5"])
def test_parse_hhmm_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="like 22:00"):
        parse_hhmm(text)


def test_timezones() -> None:
    assert check_timezone("Europe/Berlin") == "Europe/Berlin"
    for bad in ("Mars/Olympus", "", "../etc/passwd"):
        with pytest.raises(ValueError, match="like Europe/Berlin"):
            check_timezone(bad)


def test_no_row_means_defaults() -> None:
    prefs = to_preferences(None)
    assert prefs == Preferences()
    assert prefs.categories[Category.PLUGIN] is False
    assert prefs.quiet == QuietHours(time(22), time(8), "Asia/Tokyo", "silent")


async def test_stored_row_round_trip(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with sessionmaker() as session, session.begin():
        user = User(telegram_id=42)
        session.add(user)
        await session.flush()
        session.add(
            UserPreferences(
                user_id=user.id,
                categories={"plugin": True, "auth": False, "bogus": True},
                channel_order=["email", "telegram", "fax"],
                disabled_channels=["sms"],
                quiet_start="23:30",
                quiet_end="06:00",
                timezone="Europe/Berlin",
                quiet_mode="defer",
                urgent_bypass=False,
            )
        )
    async with sessionmaker() as session:
        row = await session.get(UserPreferences, user.id)
    prefs = to_preferences(row)
    assert prefs.categories[Category.PLUGIN] is True
    assert prefs.categories[Category.AUTH] is False
    assert prefs.categories[Category.SYSTEM] is True
    assert prefs.channel_order == (
        Channel.EMAIL,
        Channel.TELEGRAM,
        Channel.WEBHOOK,
        Channel.SMS,
        Channel.PUSH,
    )
    assert prefs.disabled_channels == frozenset({Channel.SMS})
    assert prefs.quiet == QuietHours(time(23, 30), time(6), "Europe/Berlin", "defer")
    assert prefs.urgent_bypass is False
    assert row is not None
    row.quiet_enabled = False
    assert to_preferences(row).quiet is None
