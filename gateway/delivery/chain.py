"""The fallback chain's decisions, pure: after a failed try, retry this channel (when) or move
on to the next one. Channel by channel retry policies; no I/O, the clock and the randomness
are arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.channels.webhook import DEFAULT_SCHEDULE
from gateway.delivery.backoff import backoff_delay
from storage.enums import Channel

# Webhooks follow the Standard Webhooks style schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
WEBHOOK_SCHEDULE: tuple[float, ...] = tuple(d.total_seconds() for d in DEFAULT_SCHEDULE)
# Temporary failures on a channel with another one after it stop being retried after this long:
# the message moves on rather than waiting a day for one endpoint.
FALL_THROUGH_AFTER = timedelta(hours=1)


@dataclass(frozen=True)
class RetryPolicy:
    """`max_attempts` tries in all; exponential backoff with full jitter between them, or the
    fixed `schedule` (one delay per retry) when given."""

    max_attempts: int
    base: float = 1.0
    cap: float = 300.0
    schedule: tuple[float, ...] | None = None

    def delay(self, failures: int, rng: Callable[[], float]) -> float | None:
        """Seconds to wait after the `failures`-th failure; None when the tries are spent."""
        if failures >= self.max_attempts:
            return None
        if self.schedule is not None:
            return self.schedule[min(failures, len(self.schedule)) - 1]
        return backoff_delay(failures, rng, base=self.base, cap=self.cap)


def webhook_policy(schedule: tuple[float, ...] = WEBHOOK_SCHEDULE) -> RetryPolicy:
    return RetryPolicy(max_attempts=len(schedule) + 1, schedule=schedule)


DEFAULT_POLICIES: Mapping[Channel, RetryPolicy] = {
    Channel.TELEGRAM: RetryPolicy(max_attempts=8, base=1.0, cap=300.0),
    Channel.EMAIL: RetryPolicy(max_attempts=6, base=30.0, cap=900.0),
    Channel.WEBHOOK: webhook_policy(),
    Channel.SMS: RetryPolicy(max_attempts=5, base=5.0, cap=300.0),
    Channel.PUSH: RetryPolicy(max_attempts=5, base=5.0, cap=300.0),
}


@dataclass(frozen=True)
class Retry:
    at: datetime


@dataclass(frozen=True)
class MoveOn:
    """Give up on this channel: the next one in the chain, or the message fails if none."""

    reason: str


def after_temporary_failure(
    *,
    failures: int,
    since: datetime,
    now: datetime,
    has_next: bool,
    policy: RetryPolicy,
    rng: Callable[[], float],
    retry_after: float | None = None,
    fall_through_after: timedelta = FALL_THROUGH_AFTER,
) -> Retry | MoveOn:
    """`failures` counts this one; `since` is the first try on this channel; `retry_after` is
    the wait the channel itself asked for (flood control), which replaces the backoff."""
    delay = policy.delay(failures, rng) if retry_after is None else retry_after
    if delay is None:
        return MoveOn(f"gave up after {failures} attempts")
    at = now + timedelta(seconds=delay)
    if has_next and at - since > fall_through_after:
        return MoveOn(f"still failing after {int((now - since).total_seconds())} s")
    return Retry(at)
