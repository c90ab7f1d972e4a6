"""gateway.retention_period: what /retention accepts, refuses and shows."""

from __future__ import annotations

import pytest

from gateway.message_request import DEFAULT_RETENTION_SECONDS
from gateway.retention_period import (
    DEFAULT_PERIOD_SECONDS,
    HINT,
    MAX_PERIOD_SECONDS,
    MIN_PERIOD_SECONDS,
    format_period,
    parse_period,
)

MINUTE, HOUR, DAY = 60, 3600, 86_400


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90m", 90 * MINUTE),
        ("2h", 2 * HOUR),
        ("7d", 7 * DAY),
        ("3600", HOUR),
        ("1d12h", DAY + 12 * HOUR),
        ("1d 12h", DAY + 12 * HOUR),
        ("1 d 12 h", DAY + 12 * HOUR),  # what format_period shows
        ("1 h 30 min", HOUR + 30 * MINUTE),
        ("2h30m15s", 2 * HOUR + 30 * MINUTE + 15),
        ("  2H ", 2 * HOUR),
        ("3 days", 3 * DAY),
        ("1 hour", HOUR),
        ("45 minutes", 45 * MINUTE),
        ("120s", 2 * MINUTE),
        ("007d", 7 * DAY),
        # the bounds are inclusive
        ("60", MIN_PERIOD_SECONDS),
        ("1m", MIN_PERIOD_SECONDS),
        ("30d", MAX_PERIOD_SECONDS),
        ("720h", MAX_PERIOD_SECONDS),
        ("2592000", MAX_PERIOD_SECONDS),
    ],
)
def test_parse_accepts(text: str, seconds: int) -> None:
    assert parse_period(text) == seconds


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "No period given"),
        ("   ", "No period given"),
        ("0", "shorter than 1 minute"),
        ("59", "shorter than 1 minute"),
        ("59s", "shorter than 1 minute"),
        ("0d", "shorter than 1 minute"),
        ("30d1s", "longer than 30 days"),
        ("31d", "longer than 30 days"),
        ("2592001", "longer than 30 days"),
        ("9" * 40, "longer than 30 days"),
        ("99999999999999d", "longer than 30 days"),
        ("soon", "can't read"),
        ("default", "can't read"),  # the bot handles this word itself
        ("2x", "can't read"),
        ("h", "can't read"),
        ("2h1d", "can't read"),  # units out of order
        ("1h1h", "can't read"),  # a unit twice
        ("1.5h", "can't read"),
        ("-5m", "can't read"),
        ("2h junk", "can't read"),
        ("junk 2h", "can't read"),
        ("5 m 3", "can't read"),
    ],
)
def test_parse_refuses_with_a_hint(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match="for example /retention 7d") as caught:
        parse_period(text)
    message = str(caught.value)
    assert problem in message
    assert message.endswith(HINT)
    assert "\n" not in message  # one line


def test_the_hint_shows_an_example_and_the_range() -> None:
    assert "1 minute to 30 days" in HINT
    assert "/retention 7d" in HINT


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0, "0 s"),
        (45, "45 s"),
        (60, "1 min"),
        (90 * MINUTE, "1 h 30 min"),
        (2 * HOUR, "2 h"),
        (DAY, "1 d"),
        (DAY + 12 * HOUR, "1 d 12 h"),
        (7 * DAY, "7 d"),
        (30 * DAY, "30 d"),
        (DAY + 1, "1 d 1 s"),
        (DAY + HOUR + MINUTE + 1, "1 d 1 h 1 min 1 s"),
    ],
)
def test_format(seconds: int, shown: str) -> None:
    assert format_period(seconds) == shown


def test_format_refuses_negative_periods() -> None:
    with pytest.raises(ValueError, match="negative"):
        format_period(-1)


@pytest.mark.parametrize(
    "seconds", [60, 61, 3599, 3600, 5400, 86_399, 86_400, 129_600, 2_591_999, 2_592_000]
)
def test_what_is_shown_reads_back_as_the_same_period(seconds: int) -> None:
    assert parse_period(format_period(seconds)) == seconds


def test_the_default_is_the_gateways_and_lies_in_the_range() -> None:
    assert DEFAULT_PERIOD_SECONDS == DEFAULT_RETENTION_SECONDS == DAY
    assert MIN_PERIOD_SECONDS == MINUTE
    assert MAX_PERIOD_SECONDS == 30 * DAY
    assert MIN_PERIOD_SECONDS <= DEFAULT_PERIOD_SECONDS <= MAX_PERIOD_SECONDS
