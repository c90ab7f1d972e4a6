"""The fallback chain's pure decisions: retry here, or move on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.delivery.chain import (
    DEFAULT_POLICIES,
    FALL_THROUGH_AFTER,
    MoveOn,
    Retry,
    RetryPolicy,
    after_temporary_failure,
    webhook_policy,
)
from storage.enums import Channel

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
HALF = lambda: 0.5  # noqa: E731 - the jitter, fixed


@pytest.mark.parametrize(
    ("failures", "since", "has_next", "retry_after", "expected"),
    [
        # Backoff while tries remain (email: 30 s base, jitter 0.5 → 15 s, then 30 s).
        (1, NOW, True, None, Retry(NOW + timedelta(seconds=15))),
        (2, NOW, True, None, Retry(NOW + timedelta(seconds=30))),
        # Tries spent: move on, whether or not there is a next channel.
        (6, NOW, True, None, MoveOn("gave up after 6 attempts")),
        (6, NOW, False, None, MoveOn("gave up after 6 attempts")),
        # Failing too long with another channel waiting: move on early ...
        (3, NOW - FALL_THROUGH_AFTER, True, None, MoveOn("still failing after 3600 s")),
        # ... but the last channel keeps its retries.
        (3, NOW - FALL_THROUGH_AFTER, False, None, Retry(NOW + timedelta(seconds=60))),
        # A wait the channel asked for replaces the backoff.
        (1, NOW, True, 120.0, Retry(NOW + timedelta(seconds=120))),
    ],
)
def test_email_decisions(
    failures: int,
    since: datetime,
    has_next: bool,
    retry_after: float | None,
    expected: Retry | MoveOn,
) -> None:
    decision = after_temporary_failure(
        failures=failures,
        since=since,
        now=NOW,
        has_next=has_next,
        policy=DEFAULT_POLICIES[Channel.EMAIL],
        rng=HALF,
        retry_after=retry_after,
    )
    assert decision == expected


def test_webhooks_follow_their_schedule_then_give_up() -> None:
    policy = webhook_policy((5, 300, 1800))
    delays = [policy.delay(n, HALF) for n in range(1, 5)]
    assert delays == [5, 300, 1800, None]


def test_a_policy_without_retries_moves_on_at_once() -> None:
    decision = after_temporary_failure(
        failures=1,
        since=NOW,
        now=NOW,
        has_next=True,
        policy=RetryPolicy(max_attempts=1),
        rng=HALF,
    )
    assert decision == MoveOn("gave up after 1 attempts")
