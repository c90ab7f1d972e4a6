"""The sandbox's sense of time: an injectable monotonic clock plus a wall clock that can jump.

Flood control measures intervals on `monotonic()`; message dates, the 48-hour deletion rule and
callback-query expiry use `now()`. Both move together when the control API advances the clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], float]
"""A callable returning monotonic seconds (`time.monotonic` by default)."""


class SandboxClock:
    """Monotonic and wall time derived from one injectable monotonic source plus an offset."""

    def __init__(self, monotonic: Clock | None = None, *, wall_start: float | None = None) -> None:
        self._source: Clock = monotonic or time.monotonic
        self._start = self._source()
        self._wall_start = time.time() if wall_start is None else wall_start
        self._offset = 0.0

    def monotonic(self) -> float:
        return self._source() + self._offset

    def now(self) -> float:
        """Unix time, seconds."""
        return self._wall_start + (self.monotonic() - self._start)

    def timestamp(self) -> int:
        """Unix time as Telegram dates are: whole seconds."""
        return int(self.now())

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self._offset += seconds
