"""The pacer's token buckets, on made-up times: no I/O, no sleeping."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import pytest

from gateway.delivery.pacing import (
    GROUP_MARGIN,
    SHORT_MARGIN,
    SWEEP_INTERVAL,
    Pacer,
    TelegramRates,
    TokenBucket,
    group_burst,
    limit_rate,
)

GROUP = -1001
OTHER_GROUP = -1002
PRIVATE = 42


def most_in_window(times: Sequence[float], window: float) -> int:
    """The most sends in any closed interval [t, t + window]."""
    ordered = sorted(times)
    most, first = 0, 0
    for last, t in enumerate(ordered):
        while ordered[first] < t - window:
            first += 1
        most = max(most, last - first + 1)
    return most


# --- TokenBucket ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "capacity", "takes", "expected"),
    [
        # (now, answer) in order: a full bucket lets `capacity` through, then paces at `rate`.
        (1.0, 1.0, [0, 0, 0.5, 1.0, 1.0], [0, 1.0, 0.5, 0, 1.0]),
        (1.0, 3.0, [0, 0, 0, 0], [0, 0, 0, 1.0]),
        (2.0, 3.0, [0, 0, 0, 0.25, 0.5, 0.5], [0, 0, 0, 0.25, 0, 0.5]),
        # Refilled, but never above capacity.
        (1.0, 2.0, [0, 0, 100, 100, 100], [0, 0, 0, 0, 1.0]),
        # Rate 0: no limit.
        (0.0, 1.0, [0, 0, 0, 0], [0, 0, 0, 0]),
    ],
)
def test_take_answers_zero_or_the_wait(
    rate: float, capacity: float, takes: list[float], expected: list[float]
) -> None:
    bucket = TokenBucket(rate, capacity)
    assert [bucket.take(now) for now in takes] == pytest.approx(expected)


def test_a_refused_take_takes_nothing() -> None:
    bucket = TokenBucket(1.0, 1.0)
    assert bucket.take(0) == 0
    for now in (0.1, 0.2, 0.9):
        assert bucket.take(now) == pytest.approx(1.0 - now)
    assert bucket.take(1.0) == 0


def test_book_hands_out_slots_one_after_another() -> None:
    bucket = TokenBucket(10.0, 1.0)
    assert [bucket.book(0) for _ in range(4)] == pytest.approx([0, 0.1, 0.2, 0.3])
    # A plain take queues behind the slots handed out.
    assert bucket.take(0.05) == pytest.approx(0.35)
    assert bucket.take(0.4) == 0


@pytest.mark.parametrize(
    ("rate", "capacity", "retry_after", "probes"),
    [
        # Blocked for retry_after, then exactly one send (no burst), then the rate.
        (1.0, 3.0, 5.0, [(0, 5.0), (4.9, 0.1), (5, 0), (5, 1.0), (6, 0)]),
        # A short block on a slow bucket: the bucket was emptied, so it must refill first.
        (0.25, 3.0, 1.0, [(0, 4.0), (1, 3.0), (4, 0), (4, 4.0)]),
        # Unlimited buckets are blocked too, then unlimited again.
        (0.0, 1.0, 30.0, [(0, 30.0), (29, 1.0), (30, 0), (30, 0)]),
    ],
)
def test_slow_down_empties_and_blocks(
    rate: float, capacity: float, retry_after: float, probes: list[tuple[float, float]]
) -> None:
    bucket = TokenBucket(rate, capacity)
    bucket.slow_down(0, retry_after)
    assert [bucket.take(now) for now, _ in probes] == pytest.approx([w for _, w in probes])


def test_slow_down_keeps_slots_already_handed_out() -> None:
    bucket = TokenBucket(10.0, 1.0)
    assert [bucket.book(0) for _ in range(3)] == pytest.approx([0, 0.1, 0.2])
    bucket.slow_down(0.0, 1.0)
    # The next slot is after the block; the ones promised before it stand.
    assert bucket.book(0.0) == pytest.approx(1.0)
    assert bucket.book(0.0) == pytest.approx(1.1)


def test_slow_down_never_shortens_a_block() -> None:
    bucket = TokenBucket(0.0, 1.0)
    bucket.slow_down(0, 30)
    bucket.slow_down(1, 2)
    assert bucket.wait(10) == pytest.approx(20)


@pytest.mark.parametrize(
    ("events", "now", "idle"),
    [
        ([], 0, True),
        (["take@0"], 0.5, False),
        (["take@0"], 1.0, True),
        (["block@0:30"], 29, False),
        (["block@0:30"], 31, True),
        (["book@0", "book@0"], 0.5, False),  # a slot still ahead
    ],
)
def test_a_bucket_is_idle_once_full_and_unblocked(
    events: list[str], now: float, idle: bool
) -> None:
    bucket = TokenBucket(1.0, 1.0)
    for event in events:
        kind, _, arg = event.partition("@")
        if kind == "take":
            bucket.take(float(arg))
        elif kind == "book":
            bucket.book(float(arg))
        else:
            at, retry = arg.split(":")
            bucket.slow_down(float(at), float(retry))
    assert bucket.idle(now) is idle


@pytest.mark.parametrize(
    ("rate", "capacity", "complaint"),
    [(-1.0, 1.0, "rate"), (1.0, 0.5, "capacity")],
)
def test_a_bucket_needs_sane_sizes(rate: float, capacity: float, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        TokenBucket(rate, capacity)


# --- sizes: why the limits hold -------------------------------------------------------------


@pytest.mark.parametrize(
    ("per_minute", "burst"),
    [(20, 3), (120, 3), (10, 2), (5, 1), (4, 1), (1, 1), (0.5, 1)],
)
def test_group_burst_is_small(per_minute: float, burst: float) -> None:
    assert group_burst(per_minute) == burst


@pytest.mark.parametrize(
    ("limit", "window", "capacity", "margin", "rate"),
    [
        (30, 1.0, 1, SHORT_MARGIN, 30 / 1.03),
        (20, 60.0, 3, GROUP_MARGIN, 18 / 61),
        (1, 1.0, 1, SHORT_MARGIN, 1 / 1.03),
        (0, 1.0, 1, SHORT_MARGIN, 0.0),  # no limit
    ],
)
def test_limit_rate(
    limit: float, window: float, capacity: float, margin: float, rate: float
) -> None:
    assert limit_rate(limit, window, capacity, margin) == pytest.approx(rate)


def greedy(bucket_wait: Callable[[float], float], until: float, step: float) -> list[float]:
    """Send whenever allowed, probing every `step` seconds (and exactly when told to wait)."""
    times: list[float] = []
    now = 0.0
    while now < until:
        wait = bucket_wait(now)
        if wait == 0:
            times.append(now)
        else:
            now += wait
            continue
        now += step
    return times


@pytest.mark.parametrize(
    ("limit", "window", "capacity", "margin"),
    [
        (30, 1.0, 1, SHORT_MARGIN),
        (20, 60.0, 3, GROUP_MARGIN),
        (120, 60.0, 3, GROUP_MARGIN),
        (1, 1.0, 1, SHORT_MARGIN),
        (20, 60.0, 1, GROUP_MARGIN),
    ],
)
def test_a_bucket_never_exceeds_its_limit_in_any_window_even_with_jitter(
    limit: int, window: float, capacity: float, margin: float
) -> None:
    bucket = TokenBucket(limit_rate(limit, window, capacity, margin), capacity)
    times = greedy(bucket.take, until=10 * window, step=window / 997)
    rng = random.Random(7)
    # Telegram counts each send a little later than we granted it, by up to (not quite) margin.
    seen = [t + rng.uniform(0, margin * 0.999) for t in times]
    assert most_in_window(seen, window) <= limit
    # ... and the bucket is not wasteful: over the run it uses most of the budget.
    assert len(times) >= 0.85 * limit * 10


# --- Pacer ----------------------------------------------------------------------------------


def test_defaults_are_telegrams_limits() -> None:
    assert TelegramRates() == TelegramRates(30, 20, 1)
    assert Pacer().rates == TelegramRates()
    with pytest.raises(ValueError, match="global_per_second"):
        TelegramRates(global_per_second=-1)


def test_a_group_is_paced_by_its_chat_and_its_group_bucket() -> None:
    pacer = Pacer(TelegramRates(global_per_second=0, group_per_minute=20, chat_per_second=1))
    granted = greedy(lambda now: pacer.reserve(GROUP, True, now), until=600, step=0.01)
    assert most_in_window(granted, 1.0) == 1  # one a second: the chat bucket
    assert most_in_window(granted, 60.0) <= 20  # twenty a minute: the group bucket
    # The group's burst, a second (plus the margin) apart: the chat bucket spaces it.
    assert granted[:3] == pytest.approx([0, 1 + SHORT_MARGIN, 2 * (1 + SHORT_MARGIN)])
    assert len(granted) >= 0.85 * 20 * 10


def test_a_private_chat_has_no_group_bucket() -> None:
    pacer = Pacer(TelegramRates(global_per_second=0, group_per_minute=20, chat_per_second=1))
    granted = greedy(lambda now: pacer.reserve(PRIVATE, False, now), until=120, step=0.01)
    assert len(granted) > 100  # about one a second, far above twenty a minute
    assert most_in_window(granted, 1.0) == 1


@pytest.mark.parametrize(
    ("rates", "answers"),
    [
        # Five sends to one group at t=0, then asking again.
        (TelegramRates(0, 0, 0), [0, 0, 0, 0, 0]),
        (TelegramRates(0, 0, 1), [0, 1 + SHORT_MARGIN, *[1 + SHORT_MARGIN] * 3]),
        (TelegramRates(0, 20, 0), [0, 0, 0, 61 / 18, 61 / 18]),
        (TelegramRates(2, 0, 0), [0, *[(1 + SHORT_MARGIN) / 2] * 4]),
    ],
)
def test_zero_lifts_a_limit(rates: TelegramRates, answers: list[float]) -> None:
    pacer = Pacer(rates)
    assert [pacer.reserve(GROUP, True, 0) for _ in answers] == pytest.approx(answers)


def test_the_global_bucket_spaces_sends_to_all_chats() -> None:
    pacer = Pacer(TelegramRates(global_per_second=30, group_per_minute=0, chat_per_second=0))
    step = (1 + SHORT_MARGIN) / 30
    # Without patience, only the first may go now.
    assert pacer.reserve(-1, True, 0) == 0
    assert pacer.reserve(-2, True, 0) == pytest.approx(step)
    # With patience, each is granted the next slot: sends queue up instead of waking together.
    slots = [pacer.reserve(-3 - i, True, 0, patience=1.0) for i in range(5)]
    assert slots == pytest.approx([step * (i + 1) for i in range(5)])
    # Beyond patience: not granted, and nothing taken.
    assert pacer.reserve(-99, True, 0, patience=0.1) == pytest.approx(6 * step)
    assert pacer.reserve(-99, True, 0, patience=1.0) == pytest.approx(6 * step)


def test_thirty_a_second_over_many_chats_never_exceeds_the_global_limit() -> None:
    pacer = Pacer(TelegramRates(global_per_second=30, group_per_minute=20, chat_per_second=1))
    times: list[float] = []
    chat = 0
    now = 0.0
    while now < 20:
        chat += 1
        wait = pacer.reserve(-chat, True, now, patience=1.0)
        if wait <= 1.0:  # granted, for a send after `wait`
            times.append(now + wait)
        now += 0.001
    assert most_in_window(times, 1.0) <= 30
    assert len(times) >= 0.95 * 30 * 20 - 30


def test_a_wait_for_one_chat_does_not_hold_up_another() -> None:
    pacer = Pacer()
    assert pacer.reserve(GROUP, True, 0) == 0
    assert pacer.reserve(GROUP, True, 0.1) > 0.5
    assert pacer.reserve(OTHER_GROUP, True, 0.1) == 0


def test_a_429_blocks_that_chat_for_retry_after_and_not_the_others() -> None:
    pacer = Pacer()
    pacer.penalise(GROUP, 0.0, 30)
    assert pacer.reserve(GROUP, True, 0.0) == pytest.approx(30)
    assert pacer.reserve(GROUP, True, 29.0) == pytest.approx(1)
    assert pacer.reserve(OTHER_GROUP, True, 0.0) == 0
    assert pacer.reserve(GROUP, True, 30.0) == 0
    assert pacer.reserve(GROUP, True, 30.0) > 0  # no burst after the block


def test_429s_for_two_chats_within_a_second_block_the_bot() -> None:
    pacer = Pacer()
    pacer.penalise(GROUP, 0.0, 5)
    pacer.penalise(GROUP, 0.5, 5)  # the same chat again: still that chat's
    assert pacer.reserve(PRIVATE, False, 0.6) == 0
    pacer.penalise(OTHER_GROUP, 1.0, 10)
    assert pacer.reserve(-7, True, 2.0) == pytest.approx(9.0)


def test_429s_for_two_chats_far_apart_stay_with_their_chats() -> None:
    pacer = Pacer()
    pacer.penalise(GROUP, 0.0, 5)
    pacer.penalise(OTHER_GROUP, 3.0, 5)
    assert pacer.reserve(-7, True, 3.0) == 0


def test_penalise_all_blocks_the_bot() -> None:
    pacer = Pacer(TelegramRates.unlimited())
    pacer.penalise_all(0.0, 3)
    assert pacer.reserve(-7, True, 1.0) == pytest.approx(2.0)
    assert pacer.reserve(-7, True, 3.0) == 0


def test_idle_buckets_are_dropped() -> None:
    pacer = Pacer()
    for chat in range(1000):
        pacer.reserve(-chat - 1, True, 0.0)
    pacer.penalise(GROUP, 0.0, 1000)
    assert pacer.tracked_chats() == 1001
    pacer.reserve(OTHER_GROUP, True, SWEEP_INTERVAL + 1)
    # Only the blocked chat and the one just used are left.
    assert pacer.tracked_chats() == 2
    assert pacer.reserve(GROUP, True, SWEEP_INTERVAL + 2) > 0  # its block was kept


def test_a_chat_first_seen_as_private_gets_a_group_bucket_when_used_as_a_group() -> None:
    pacer = Pacer(TelegramRates(0, 20, 0))
    assert [pacer.reserve(GROUP, False, 0) for _ in range(5)] == [0] * 5
    assert [pacer.reserve(GROUP, True, 0) for _ in range(4)][-1] > 0
