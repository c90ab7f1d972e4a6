"""A person's default retention as they type it (`90m`, `2h`, `7d`, `1d12h`, `3600`) and as the
bot shows it (`1 d 12 h`). Pure: no I/O, table-tested.

The allowed range is 1 minute to 30 days inclusive: shorter would purge a message's record
before a slow delivery has finished, longer than the API's own ceiling for `retention_seconds`.
"""

from __future__ import annotations

import re

from gateway.message_request import DEFAULT_RETENTION_SECONDS, MAX_RETENTION_SECONDS

MIN_PERIOD_SECONDS = 60
MAX_PERIOD_SECONDS = MAX_RETENTION_SECONDS  # 30 days
DEFAULT_PERIOD_SECONDS = DEFAULT_RETENTION_SECONDS  # what applies when the person sets nothing

HINT = "Use 1 minute to 30 days, for example /retention 7d, 2h, 90m, 1d12h or 3600 (seconds)"

# Units from the largest down; each may appear once, in this order (`1d12h`, `1 h 30 min`).
_UNITS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (86_400, ("d", "day", "days")),
    (3_600, ("h", "hr", "hrs", "hour", "hours")),
    (60, ("m", "min", "mins", "minute", "minutes")),
    (1, ("s", "sec", "secs", "second", "seconds")),
)
_SECONDS_OF = {name: seconds for seconds, names in _UNITS for name in names}
_PART = re.compile(r"(\d+)\s*([a-z]+)")
_MAX_DIGITS = 12  # anything longer is far beyond 30 days; spares int() a huge string


def parse_period(text: str) -> int:
    """`7d` → 604800; a bare number is seconds. ValueError (its message ends with HINT) for
    anything unreadable or outside 1 minute..30 days."""
    cleaned = text.strip().lower()
    if not cleaned:
        raise ValueError(f"No period given. {HINT}")
    shown = text.strip()[:32]
    total = _bounded_int(cleaned) if cleaned.isdigit() else _sum_of_parts(cleaned, shown)
    if total < MIN_PERIOD_SECONDS:
        raise ValueError(f"“{shown}” is shorter than 1 minute. {HINT}")
    if total > MAX_PERIOD_SECONDS:
        raise ValueError(f"“{shown}” is longer than 30 days. {HINT}")
    return total


def _bounded_int(digits: str) -> int:
    stripped = digits.lstrip("0") or "0"
    if len(stripped) > _MAX_DIGITS:
        return MAX_PERIOD_SECONDS + 1
    return int(stripped)


def _sum_of_parts(cleaned: str, shown: str) -> int:
    unreadable = ValueError(f"I can't read “{shown}” as a period. {HINT}")
    position, total, smallest_so_far = 0, 0, None
    for match in _PART.finditer(cleaned):
        gap = cleaned[position : match.start()]
        if gap.strip():
            raise unreadable
        unit = _SECONDS_OF.get(match.group(2))
        if unit is None or (smallest_so_far is not None and unit >= smallest_so_far):
            raise unreadable  # unknown unit, or units repeated / out of order (`2h1d`)
        smallest_so_far = unit
        total += _bounded_int(match.group(1)) * unit
        position = match.end()
    if smallest_so_far is None or cleaned[position:].strip():
        raise unreadable
    return total


def format_period(seconds: int) -> str:
    """604800 → "7 d", 129600 → "1 d 12 h", 5400 → "1 h 30 min", 45 → "45 s"."""
    if seconds < 0:
        raise ValueError("a period can't be negative")
    if seconds == 0:
        return "0 s"
    labels = {86_400: "d", 3_600: "h", 60: "min", 1: "s"}
    parts: list[str] = []
    rest = seconds
    for size, label in labels.items():
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count} {label}")
    return " ".join(parts)
