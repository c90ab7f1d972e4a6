"""New message ids: canonical UUIDs, version 7, each sorting after the one before (so that the
indexes keyed by message id grow at their end; storage.message_ids)."""

from __future__ import annotations

import uuid

from storage.message_ids import new_message_id


def test_new_ids_are_canonical_time_ordered_uuids() -> None:
    ids = [new_message_id() for _ in range(5000)]  # many within one millisecond
    for message_id in ids:
        parsed = uuid.UUID(message_id)
        assert str(parsed) == message_id  # what the API's path check accepts
        assert parsed.version == 7
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
