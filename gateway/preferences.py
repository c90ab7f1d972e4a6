"""Stored preferences (storage.models.UserPreferences) to the routing engine's Preferences."""

from __future__ import annotations

import re
from datetime import time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.routing import DEFAULT_CATEGORIES, DEFAULT_CHANNEL_ORDER, Preferences, QuietHours
from storage.enums import Category, Channel
from storage.models import UserPreferences

_HHMM = re.compile(r"^([01]?[0-9]|2[0-3]):([0-5][0-9])$")


def parse_hhmm(text: str) -> time:
    """'22:00' or '7:30' → time; ValueError with a hint otherwise."""
    match = _HHMM.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a time like 22:00")
    return time(int(match.group(1)), int(match.group(2)))


def check_timezone(name: str) -> str:
    """An IANA zone name as given; ValueError with a hint otherwise."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not a time zone like Europe/Berlin") from None
    return name


def zone_or_utc(name: str | None) -> ZoneInfo:
    """The person's zone for showing times (the default when unset); UTC for a name this host's
    tz database lacks, so a display never fails."""
    try:
        return ZoneInfo(name or QuietHours().timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def to_preferences(row: UserPreferences | None) -> Preferences:
    """The person's preferences; defaults for everything not stored (or no row at all)."""
    if row is None:
        return Preferences()
    categories = dict(DEFAULT_CATEGORIES)
    for key, enabled in row.categories.items():
        if key in Category._value2member_map_:
            categories[Category(key)] = bool(enabled)
    known = [Channel(c) for c in row.channel_order if c in Channel._value2member_map_]
    # Channels added after the person last saved their order go at the end, in default order.
    order = tuple(dict.fromkeys([*known, *DEFAULT_CHANNEL_ORDER]))
    disabled = frozenset(
        Channel(c) for c in row.disabled_channels if c in Channel._value2member_map_
    )
    quiet = None
    if row.quiet_enabled:
        quiet = QuietHours(
            start=parse_hhmm(row.quiet_start),
            end=parse_hhmm(row.quiet_end),
            timezone=row.timezone,
            mode="defer" if row.quiet_mode == "defer" else "silent",
        )
    return Preferences(
        categories=categories,
        channel_order=order,
        disabled_channels=disabled,
        quiet=quiet,
        urgent_bypass=row.urgent_bypass,
    )
