"""New message ids (storage.message_ids): canonical UUIDs of version 7 whose time is the
clock's, never pushed ahead, so they sort in the order they were made, to within a fraction of
a millisecond, and tell nothing about how many other ids were made meanwhile."""

from __future__ import annotations

import itertools
import uuid

import pytest

from storage.message_ids import new_message_id

BASE_NS = 1_796_000_000_000_000_000  # 2026-11-30 (nanoseconds since the Unix epoch)


def _milliseconds_of(message_id: str) -> int:
    return uuid.UUID(message_id).int >> 80


def test_an_id_is_a_canonical_uuid_of_version_7() -> None:
    message_id = new_message_id()
    parsed = uuid.UUID(message_id)
    assert str(parsed) == message_id  # what the API's path check accepts
    assert (parsed.version, parsed.variant) == (7, uuid.RFC_4122)


@pytest.mark.parametrize(
    "offsets_ns",
    [
        [0, 1_000_000, 2_000_000],  # a millisecond apart
        [0, 250_000, 500_000, 999_999],  # within one millisecond: its fraction orders them
        [0, 10**9, 3600 * 10**9],  # a second, an hour
    ],
)
def test_ids_sort_in_the_order_they_were_made(offsets_ns: list[int]) -> None:
    ids = [new_message_id(lambda o=o: BASE_NS + o) for o in offsets_ns]  # type: ignore[misc]
    assert ids == sorted(ids)


def test_the_time_in_an_id_is_the_clocks_however_many_are_made() -> None:
    # uuid6's uuid7() pushed each id of the same millisecond a millisecond ahead: the time in
    # the last of 5,000 was five seconds in the future, and told how many came before it.
    ids = [new_message_id(lambda: BASE_NS) for _ in range(5000)]
    assert {_milliseconds_of(i) for i in ids} == {BASE_NS // 1_000_000}
    assert len(set(ids)) == len(ids)  # 62 random bits each


def test_ids_made_apart_in_time_carry_their_own_milliseconds() -> None:
    times = [BASE_NS + n * 7_300_000 for n in range(4)]
    clock = itertools.chain(times)
    ids = [new_message_id(lambda: next(clock)) for _ in times]
    assert [_milliseconds_of(i) for i in ids] == [t // 1_000_000 for t in times]
