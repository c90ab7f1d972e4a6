"""Exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff and Jitter").

Full jitter spreads the retries of many messages that failed together (a Telegram outage) over
the whole window instead of bunching them at the same instants.
"""

from __future__ import annotations

from collections.abc import Callable

BASE_SECONDS = 1.0
CAP_SECONDS = 300.0


def backoff_delay(
    failures: int,
    rng: Callable[[], float],
    *,
    base: float = BASE_SECONDS,
    cap: float = CAP_SECONDS,
) -> float:
    """Seconds to wait after the `failures`-th failure (1-based): uniform in [0, ceiling)."""
    exponent = min(max(failures - 1, 0), 32)  # bounded: the cap is reached long before
    ceiling = min(cap, base * 2.0**exponent)
    return ceiling * rng()
