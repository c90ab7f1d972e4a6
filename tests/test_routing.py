"""The routing engine, as plain tables of cases: no I/O, the clock passed in."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from gateway.routing import (
    MessageFacts,
    Plan,
    Preferences,
    QuietHours,
    RecipientState,
    plan_route,
    quiet_window_end,
)
from storage.enums import Category, Channel, Priority

TOKYO_NIGHT = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)  # 23:00 in Tokyo
TOKYO_DAY = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)  # 12:00 in Tokyo
LINKED = RecipientState(linked_group=True, topics={Category.AUTH: 3, Category.GENERAL: None})


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("quiet", "now", "ends"),
    [
        # Crossing midnight in Tokyo (UTC+9, no DST): 22:00-08:00.
        (QuietHours(), utc(2026, 11, 24, 13, 0), utc(2026, 11, 24, 23, 0)),  # 22:00 local
        (QuietHours(), utc(2026, 11, 24, 12, 59), None),  # 21:59 local
        (QuietHours(), utc(2026, 11, 24, 15, 30), utc(2026, 11, 24, 23, 0)),  # 00:30 local
        (QuietHours(), utc(2026, 11, 24, 22, 59), utc(2026, 11, 24, 23, 0)),  # 07:59 local
        (QuietHours(), utc(2026, 11, 24, 23, 0), None),  # 08:00 local: window over
        # A window inside one day.
        (QuietHours(time(13), time(14), "UTC"), utc(2026, 1, 1, 13, 30), utc(2026, 1, 1, 14)),
        (QuietHours(time(13), time(14), "UTC"), utc(2026, 1, 1, 14, 0), None),
        # start == end is an empty window.
        (QuietHours(time(8), time(8), "UTC"), utc(2026, 1, 1, 8, 0), None),
        # Berlin, spring forward 2026-03-29 02:00 → 03:00: a window ending 02:30 (skipped wall
        # time) ends at 03:30 CEST = 01:30 UTC.
        (
            QuietHours(time(22), time(2, 30), "Europe/Berlin"),
            utc(2026, 3, 28, 23, 0),
            utc(2026, 3, 29, 1, 30),
        ),
        # Berlin, fall back 2026-10-25 03:00 → 02:00: 08:00 local is 07:00 UTC after the change.
        (
            QuietHours(time(22), time(8), "Europe/Berlin"),
            utc(2026, 10, 24, 21, 0),
            utc(2026, 10, 25, 7, 0),
        ),
        # A repeated wall time (02:30 happens twice) ends at its first occurrence (CEST).
        (
            QuietHours(time(22), time(2, 30), "Europe/Berlin"),
            utc(2026, 10, 24, 21, 0),
            utc(2026, 10, 25, 0, 30),
        ),
        # In the repeated hour (02:00-03:00 comes twice), inside the window again: it ends at
        # the second 02:30 (CET) = 01:30 UTC, not at once.
        (
            QuietHours(time(22), time(2, 30), "Europe/Berlin"),
            utc(2026, 10, 25, 1, 15),  # 02:15 CET, the second time
            utc(2026, 10, 25, 1, 30),
        ),
        # New York falls back 2026-11-01 02:00 EDT → 01:00 EST: a window ending 01:30 ends at
        # the first 01:30 (EDT) from the first pass, at the second (EST) from the second.
        (
            QuietHours(time(22), time(1, 30), "America/New_York"),
            utc(2026, 11, 1, 5, 15),  # 01:15 EDT
            utc(2026, 11, 1, 5, 30),
        ),
        (
            QuietHours(time(22), time(1, 30), "America/New_York"),
            utc(2026, 11, 1, 6, 15),  # 01:15 EST
            utc(2026, 11, 1, 6, 30),
        ),
        (
            QuietHours(time(22), time(1, 30), "America/New_York"),
            utc(2026, 11, 1, 6, 30),  # 01:30 EST: over
            None,
        ),
        # New York DST start 2026-03-08: 08:00 EDT = 12:00 UTC.
        (
            QuietHours(time(22), time(8), "America/New_York"),
            utc(2026, 3, 8, 5, 0),
            utc(2026, 3, 8, 12, 0),
        ),
    ],
)
def test_quiet_window_end(quiet: QuietHours, now: datetime, ends: datetime | None) -> None:
    assert quiet_window_end(quiet, now) == ends


DEFER = Preferences(quiet=QuietHours(mode="defer"))
NO_BYPASS = Preferences(urgent_bypass=False)
NO_QUIET = Preferences(quiet=None)


@pytest.mark.parametrize(
    ("category", "priority", "prefs", "now", "silent", "deferred"),
    [
        # Every priority at night with the default (silent) mode.
        (Category.SYSTEM, Priority.LOW, Preferences(), TOKYO_NIGHT, True, False),
        (Category.SYSTEM, Priority.NORMAL, Preferences(), TOKYO_NIGHT, True, False),
        (Category.SYSTEM, Priority.HIGH, Preferences(), TOKYO_NIGHT, True, False),
        (Category.SYSTEM, Priority.URGENT, Preferences(), TOKYO_NIGHT, False, False),
        (Category.AUTH, Priority.NORMAL, Preferences(), TOKYO_NIGHT, True, False),
        (Category.AUTH, Priority.HIGH, Preferences(), TOKYO_NIGHT, False, False),
        (Category.AUTH, Priority.URGENT, Preferences(), TOKYO_NIGHT, False, False),
        # Defer mode.
        (Category.SYSTEM, Priority.LOW, DEFER, TOKYO_NIGHT, False, True),
        (Category.SYSTEM, Priority.HIGH, DEFER, TOKYO_NIGHT, False, True),
        (Category.SYSTEM, Priority.URGENT, DEFER, TOKYO_NIGHT, False, False),
        (Category.AUTH, Priority.HIGH, DEFER, TOKYO_NIGHT, False, False),
        # Bypass turned off: even urgent waits or goes silent.
        (Category.SYSTEM, Priority.URGENT, NO_BYPASS, TOKYO_NIGHT, True, False),
        (Category.AUTH, Priority.HIGH, NO_BYPASS, TOKYO_NIGHT, True, False),
        # Daytime and quiet hours off: always with sound, now.
        (Category.SYSTEM, Priority.LOW, Preferences(), TOKYO_DAY, False, False),
        (Category.SYSTEM, Priority.LOW, DEFER, TOKYO_DAY, False, False),
        (Category.SYSTEM, Priority.LOW, NO_QUIET, TOKYO_NIGHT, False, False),
    ],
)
def test_priorities_against_settings(
    category: Category,
    priority: Priority,
    prefs: Preferences,
    now: datetime,
    silent: bool,
    deferred: bool,
) -> None:
    plan = plan_route(MessageFacts(category, priority), prefs, LINKED, now)
    assert plan.deliver
    assert plan.silent is silent
    assert (plan.deferred_until is not None) is deferred
    if deferred:
        assert plan.deferred_until == utc(2026, 11, 24, 23, 0)  # 08:00 Tokyo
        assert plan.status == "deferred"


@pytest.mark.parametrize(
    ("kept_for", "silent", "deferred"),
    [
        (None, False, True),  # no deadline given
        (timedelta(hours=12), False, True),  # kept past 08:00 (9 hours away): deferred
        (timedelta(hours=9, seconds=1), False, True),
        (timedelta(hours=9), True, False),  # would expire as it is released: now, silently
        (timedelta(hours=1), True, False),  # would expire in the window: now, silently
    ],
)
def test_a_deferral_never_outlasts_the_messages_retention(
    kept_for: timedelta | None, silent: bool, deferred: bool
) -> None:
    kept_until = None if kept_for is None else TOKYO_NIGHT + kept_for
    plan = plan_route(
        MessageFacts(Category.SYSTEM, Priority.NORMAL),
        DEFER,
        LINKED,
        TOKYO_NIGHT,
        kept_until=kept_until,
    )
    assert plan.deliver
    assert plan.silent is silent
    assert (plan.deferred_until is not None) is deferred


@pytest.mark.parametrize(
    ("message", "prefs", "state", "expected"),
    [
        # Plugin is off by default: suppressed with the reason.
        (
            MessageFacts(Category.PLUGIN, Priority.URGENT),
            Preferences(),
            LINKED,
            Plan(False, reason="category plugin is turned off"),
        ),
        # Topic and hashtags of the category; an explicit thread wins.
        (
            MessageFacts(Category.AUTH, Priority.LOW, hashtags=("login", "#Login", "123")),
            NO_QUIET,
            LINKED,
            Plan(
                True,
                channels=(Channel.TELEGRAM,),
                thread_id=3,
                hashtags=("#auth", "#security", "#login"),
            ),
        ),
        (
            MessageFacts(Category.AUTH, Priority.LOW, thread_id=9),
            NO_QUIET,
            LINKED,
            Plan(True, channels=(Channel.TELEGRAM,), thread_id=9, hashtags=("#auth", "#security")),
        ),
        # Channels: the person's order, only verified and not disabled ones.
        (
            MessageFacts(Category.GENERAL, Priority.LOW),
            Preferences(
                quiet=None,
                channel_order=(Channel.EMAIL, Channel.TELEGRAM, Channel.SMS),
                disabled_channels=frozenset({Channel.SMS}),
            ),
            RecipientState(True, verified_channels=frozenset({Channel.EMAIL, Channel.SMS})),
            Plan(True, channels=(Channel.EMAIL, Channel.TELEGRAM), hashtags=("#general",)),
        ),
        # Requested channels narrow the list to what the person allows.
        (
            MessageFacts(Category.GENERAL, Priority.LOW, requested_channels=(Channel.SMS,)),
            Preferences(quiet=None, disabled_channels=frozenset({Channel.SMS})),
            RecipientState(True, verified_channels=frozenset({Channel.SMS})),
            Plan(False, reason="none of the requested channels is allowed by the recipient"),
        ),
        (
            MessageFacts(
                Category.GENERAL, Priority.LOW, requested_channels=(Channel.SMS, Channel.TELEGRAM)
            ),
            NO_QUIET,
            RecipientState(True, verified_channels=frozenset({Channel.SMS})),
            Plan(True, channels=(Channel.TELEGRAM, Channel.SMS), hashtags=("#general",)),
        ),
        # SMS and push interrupt: only urgent messages use them unless a sender names them.
        (
            MessageFacts(Category.GENERAL, Priority.HIGH),
            NO_QUIET,
            RecipientState(True, verified_channels=frozenset(Channel)),
            Plan(
                True,
                channels=(Channel.TELEGRAM, Channel.EMAIL, Channel.WEBHOOK),
                hashtags=("#general",),
            ),
        ),
        (
            MessageFacts(Category.GENERAL, Priority.URGENT),
            NO_QUIET,
            RecipientState(True, verified_channels=frozenset(Channel)),
            Plan(True, channels=tuple(Channel), hashtags=("#general",)),
        ),
        (
            MessageFacts(Category.GENERAL, Priority.LOW),
            NO_QUIET,
            RecipientState(False, verified_channels=frozenset({Channel.SMS, Channel.PUSH})),
            Plan(False, reason="the recipient has no channel available"),
        ),
        # Nothing linked and nothing verified.
        (
            MessageFacts(Category.GENERAL, Priority.LOW),
            NO_QUIET,
            RecipientState(False),
            Plan(False, reason="the recipient has no channel available"),
        ),
    ],
)
def test_plans(
    message: MessageFacts, prefs: Preferences, state: RecipientState, expected: Plan
) -> None:
    assert plan_route(message, prefs, state, TOKYO_DAY) == expected


def test_naive_clock_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        plan_route(
            MessageFacts(Category.AUTH, Priority.LOW),
            Preferences(),
            LINKED,
            datetime(2026, 1, 1),
        )
