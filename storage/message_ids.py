"""Ids of new messages: UUIDv7, which start with the time they were made (to the millisecond),
so each new id sorts after the ones before it.

A random id (UUIDv4) lands anywhere in the primary key's index, and in the indexes of the rows
that name a message (its attempts, its kept copies): each row a group commit inserted dirtied a
page of its own, and every such page went to the write-ahead log. New ids at the end of those
indexes share their pages. Measured from /proc/PID/io of the gateway's two processes, two runs
each: `bench/ingress.py 20000 64,256 --configs paced+api` wrote 377 and 386 MB against 709 and
715 MB with UUIDv4, `bench/pipeline.py 20000 32 20 --separate-sandbox --api 1 --api-only` 1,182
and 1,186 MB against 1,719 and 1,727. The time in an id says no more than the status
endpoint's `created_at`, and only the sender that got it back learns it.
"""

from __future__ import annotations

from uuid6 import uuid7


def new_message_id() -> str:
    return str(uuid7())
