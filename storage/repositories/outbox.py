"""The delivery worker's queries: finding due messages, claiming them, settling them.

Claims are leases, not locks: a worker sets `status=sending` and `claimed_until=now+lease` with a
conditional UPDATE and owns the row while the lease runs. Every later write of that worker is
conditional on the exact `claimed_until` it set (its "claim token"), so a worker that overran its
lease and lost the row to another worker cannot overwrite the other's outcome. Conditional
UPDATE plus `rowcount` works the same on SQLite and PostgreSQL (no SKIP LOCKED needed).

`Message.attempt_count` counts the tries that count toward the retry bound: every attempt except
those Telegram answered with 429 (flood control is Telegram pacing us, not a failure).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Integer,
    Select,
    String,
    TextClause,
    Update,
    and_,
    bindparam,
    case,
    cast,
    func,
    or_,
    select,
    text,
    tuple_,
    union,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from storage.enums import AttemptOutcome, Channel, MessageStatus, Priority
from storage.models import QUEUED_NOT_CARRIED, URGENT_NOT_CARRIED, DeliveryAttempt, Message
from storage.repositories import core
from storage.repositories.planner import by_key, likely


@dataclass(frozen=True)
class Candidate:
    message_id: str
    recipient_id: int
    # The channel the message tries now (where it stands in its fallback chain).
    channel: Channel = Channel.TELEGRAM


def _channel_now(channels: list[str] | None, index: int) -> Channel:
    # As gateway.delivery.claim.current_channel: old rows without a chain go to Telegram.
    if channels and 0 <= index < len(channels):
        return Channel(channels[index])
    return Channel.TELEGRAM


def _due(now: datetime | ColumnElement[datetime]) -> ColumnElement[bool]:
    """Queued and due, or being sent by a worker whose lease ran out (it crashed or hung).

    A message carried by a digest is never sent itself: it settles with its carrier.
    """
    # The carried test is in each branch: that is how SQLite sees that each can use the
    # partial index ix_messages_due_in_order (both are searched in it, one after the other).
    not_carried = Message.carried_by.is_(None)
    return or_(
        and_(not_carried, Message.status == MessageStatus.QUEUED, Message.next_attempt_at <= now),
        and_(not_carried, Message.status == MessageStatus.SENDING, Message.claimed_until < now),
    )


async def _update(session: AsyncSession, *where: ColumnElement[bool], **values: Any) -> int:
    # synchronize_session=False: the worker reads rows fresh after each write, and "evaluate"
    # cannot handle every condition used here anyway.
    result = await core.execute(session, update(Message).where(*where).values(**values))
    return result.rowcount


# `urgent` and `high` go before `normal` and `low`: two classes, ordered by time within each.
PRIORITY_CLASS = case(
    (Message.priority.in_([Priority.URGENT, Priority.HIGH]), 0),
    else_=1,
)
_IN_ORDER = (Message.next_attempt_at, Message.created_at, Message.id)
_NOW = bindparam("now", type_=Message.next_attempt_at.type)
_LIMIT: BindParameter[int] = bindparam("limit", type_=Integer)


def _first_of(*where: ColumnElement[bool] | TextClause, by_class: bool = False) -> Select[Any]:
    """The first `limit` rows of one branch of due work, by time (or by class, then time): a
    queued branch is a range of one index read in its order, so SQLite stops after `limit`
    rows however many are due."""
    order = (PRIORITY_CLASS, *_IN_ORDER) if by_class else _IN_ORDER
    found = (
        select(Message.id, PRIORITY_CLASS.label("rank"), *_IN_ORDER[:2])
        .where(*where)
        .order_by(*order)
        .limit(_LIMIT)
        .subquery()
    )
    return select(found)  # a compound's members may not have ORDER BY/LIMIT of their own


_QUEUED_DUE = (Message.status == MessageStatus.QUEUED, Message.next_attempt_at <= _NOW)
# The top `limit` rows by (class, time) are among the first `limit` urgent-or-high due rows
# and the first `limit` due rows of any class: a row of class 1 missing from the second set
# has `limit` rows before it there, and those outrank it. Sorting every due row to find them
# took 5.6 ms a pass with 16,000 due (the messages of a burst faster than the worker folds).
_FOUND = union(
    _first_of(text(URGENT_NOT_CARRIED), *_QUEUED_DUE),  # ix_messages_due_urgent
    _first_of(Message.carried_by.is_(None), *_QUEUED_DUE),  # ix_messages_due_in_order
    # Being sent by a worker whose lease ran out (it crashed or hung): few rows, all of them
    # sorted, by class too (more than `limit` of them, urgent ones must not wait behind).
    _first_of(
        Message.carried_by.is_(None),
        Message.status == MessageStatus.SENDING,
        Message.claimed_until < _NOW,
        by_class=True,
    ),
).subquery("found")
_DUE = (
    select(Message.id, Message.recipient_id, Message.channels, Message.channel_index)
    .join(_FOUND, _FOUND.c.id == Message.id)
    .order_by(_FOUND.c.rank, _FOUND.c.next_attempt_at, _FOUND.c.created_at, _FOUND.c.id)
    .limit(_LIMIT)
)


async def due(session: AsyncSession, now: datetime, limit: int) -> list[Candidate]:
    """Messages to try now (as `_due` tells): the urgent and high ones first, then normal and
    low; within a class oldest due first, so a person's messages of one class keep their
    order."""
    rows = await core.execute(session, _DUE, {"now": now, "limit": limit})
    return [
        Candidate(message_id, recipient_id, _channel_now(channels, index))
        for message_id, recipient_id, channels, index in rows
    ]


# The statements every delivery runs are built once, with bound parameters: building the
# expression and computing its cache key again on each call was about a quarter of the worker's
# CPU (py-spy during bench/pipeline.py). SQLAlchemy memoises the key of a statement object.
_CLAIM = (
    update(Message)
    .where(
        *by_key(
            Message.id.in_(bindparam("message_ids", expanding=True)),
            _due(_NOW),
            # Past its retention an undelivered message is the purge's to drop (its recipient
            # told once), not sent late: a one-time code, say, that expired in a backlog.
            Message.retention_expires_at > _NOW,
        )
    )
    .values(status=MessageStatus.SENDING, claimed_until=bindparam("until"))
    .returning(Message)
)


async def claim_many(
    session: AsyncSession, message_ids: Sequence[str], now: datetime, until: datetime
) -> dict[str, Message]:
    """Take these messages for this worker until `until` (the claim token) in one statement,
    and read them back in it (RETURNING: no gap in which one could be erased). Those another
    worker has, that are no longer due, or whose retention has ended (the purge drops them),
    are not among the result."""
    if not message_ids:
        return {}
    result = await session.scalars(
        _CLAIM,
        {"message_ids": list(message_ids), "now": now, "until": until},
        execution_options={"synchronize_session": False, "populate_existing": True},
    )
    return {message.id: message for message in result}


async def claim(
    session: AsyncSession, message_id: str, now: datetime, until: datetime
) -> Message | None:
    """`claim_many` for one message: the message, or None if another worker has it or it is
    not due."""
    return (await claim_many(session, [message_id], now, until)).get(message_id)


@cache
def _held_update(columns: frozenset[str]) -> Update:
    """UPDATE of `columns` (bound as `new_<column>`) if this worker still holds the claim."""
    return (
        update(Message)
        .where(
            Message.id == bindparam("held_id"),
            Message.status == MessageStatus.SENDING,
            Message.claimed_until == bindparam("held_token"),
        )
        .values({column: bindparam(f"new_{column}") for column in sorted(columns)})
    )


async def _update_held(
    session: AsyncSession, message_id: str, token: datetime, values: dict[str, Any]
) -> bool:
    params = {f"new_{column}": value for column, value in values.items()}
    result = await core.execute(
        session,
        _held_update(frozenset(values)),
        {"held_id": message_id, "held_token": token, **params},
    )
    return result.rowcount == 1


async def extend_claim(
    session: AsyncSession, message_id: str, token: datetime, until: datetime
) -> bool:
    """Move this worker's lease to `until` (the new token); False if the claim was lost."""
    return await _update_held(session, message_id, token, {"claimed_until": until})


async def settle(session: AsyncSession, message_id: str, token: datetime, **values: Any) -> bool:
    """Write an outcome (status and friends) if this worker still holds the claim."""
    return await _update_held(session, message_id, token, values)


_SETTLE_DELIVERED = (
    update(Message)
    .where(
        *by_key(
            Message.id.in_(bindparam("message_ids", expanding=True)),
            Message.status == MessageStatus.SENDING,
            tuple_(Message.id, Message.claimed_until).in_(bindparam("held", expanding=True)),
        )
    )
    .values(
        status=MessageStatus.DELIVERED,
        delivered_at=bindparam("at", type_=Message.delivered_at.type),
        delivered_via=bindparam("via", type_=Message.delivered_via.type),
        attempt_count=Message.attempt_count + 1,
        encrypted_content=None,
        claimed_until=None,
        failure_reason=None,
    )
    .returning(Message.id)
)


async def settle_delivered(
    session: AsyncSession, held: Sequence[tuple[str, datetime]], at: datetime, via: Channel
) -> set[str]:
    """Mark delivered at `at` by `via`, content wiped, those of these (message id, claim token)
    whose claim this worker still holds, in one statement (`settle` of each, as a delivery
    writes it, for many messages at once); the ids it marked. The ids are bound twice: alone
    they are what SQLite searches the primary key for (`by_key`), the pairs are the check."""
    if not held:
        return set()
    result = await core.execute(
        session,
        _SETTLE_DELIVERED,
        {"message_ids": [m for m, _ in held], "held": list(held), "at": at, "via": via},
    )
    return set(result.scalars())


async def postpone(
    session: AsyncSession, message_ids: Sequence[str], until: datetime, now: datetime
) -> None:
    """Hold these messages back until `until` (their chat is held back); keeps their order.
    Queued ones are due then; those left being sent by a worker whose lease ran out (it
    stopped) are queued again, due then: left as they were, they would be due at once and
    every pass until then would find them again. Those a worker holds (a live lease) are left
    alone."""
    if message_ids:
        await _update(
            session,
            *by_key(
                Message.id.in_(message_ids),
                or_(
                    and_(Message.status == MessageStatus.QUEUED, Message.next_attempt_at < until),
                    and_(Message.status == MessageStatus.SENDING, Message.claimed_until < now),
                ),
            ),
            status=MessageStatus.QUEUED,
            claimed_until=None,
            next_attempt_at=until,
        )


async def release(
    session: AsyncSession, message_ids: Sequence[str], token: datetime, until: datetime | None
) -> None:
    """Hand back messages this worker claimed (with `token`) but did not try: queued again, due
    at `until` (None: when they were due, so they keep their place). Those whose claim was lost
    meanwhile are left alone."""
    if message_ids:
        due_at = {} if until is None else {"next_attempt_at": until}
        await _update(
            session,
            *by_key(
                Message.id.in_(message_ids),
                Message.status == MessageStatus.SENDING,
                Message.claimed_until == token,
            ),
            status=MessageStatus.QUEUED,
            claimed_until=None,
            **due_at,
        )


async def lease_of(session: AsyncSession, message_id: str) -> datetime | None:
    """Until when a worker holds the message (None: no worker does)."""
    return await session.scalar(
        select(Message.claimed_until).where(
            Message.id == message_id, Message.status == MessageStatus.SENDING
        )
    )


_LAST_ATTEMPTS = (
    select(DeliveryAttempt.message_id, DeliveryAttempt.channel, func.max(DeliveryAttempt.attempt))
    .where(DeliveryAttempt.message_id.in_(bindparam("message_ids", expanding=True)))
    .group_by(DeliveryAttempt.message_id, DeliveryAttempt.channel)
)


async def next_attempt_numbers(
    session: AsyncSession, tries: Sequence[tuple[str, Channel]]
) -> dict[str, int]:
    """The number the next attempt of each (message, channel) gets, in one statement."""
    if not tries:
        return {}
    rows = await core.execute(session, _LAST_ATTEMPTS, {"message_ids": [m for m, _ in tries]})
    last = {(message_id, Channel(channel)): number for message_id, channel, number in rows}
    return {
        message_id: int(last.get((message_id, channel)) or 0) + 1 for message_id, channel in tries
    }


async def next_attempt_number(session: AsyncSession, message_id: str, channel: Channel) -> int:
    return (await next_attempt_numbers(session, [(message_id, channel)]))[message_id]


def attempt_row(
    message_id: str,
    channel: Channel,
    attempt: int,
    outcome: AttemptOutcome,
    at: datetime,
    *,
    external_id: str | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    """A DeliveryAttempt row for `add_attempts`."""
    return {
        "message_id": message_id,
        "channel": channel,
        "attempt": attempt,
        "outcome": outcome,
        "external_id": external_id,
        "error": error[:500] if error else None,
        "attempted_at": at,
    }


_INSERT_ATTEMPT = core.insert_of(DeliveryAttempt)


async def add_attempts(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Insert attempt rows (`attempt_row`) in one statement. A Core INSERT, not ORM objects:
    the unit of work's flush of two rows per delivery was a sixth of the worker's CPU."""
    await core.insert_rows(session, _INSERT_ATTEMPT, rows)


async def next_wakeup(session: AsyncSession) -> datetime | None:
    """When the next message becomes due: a queued one's time, or a running-out lease."""
    queued = await session.scalar(
        select(func.min(Message.next_attempt_at)).where(
            Message.status == MessageStatus.QUEUED, Message.carried_by.is_(None)
        )
    )
    leased = await session.scalar(
        select(func.min(Message.claimed_until)).where(
            # Always true of a sending message (only queued ones are folded); it lets the
            # query use ix_messages_due_in_order.
            Message.status == MessageStatus.SENDING,
            Message.carried_by.is_(None),
        )
    )
    times = [t for t in (queued, leased) if t is not None]
    return min(times) if times else None


async def held_chats(session: AsyncSession, now: datetime) -> dict[int, datetime]:
    """Per recipient, until when a worker held back its Telegram messages, as the outbox
    shows it: the latest due time of its queued Telegram messages due later (a retry's
    backoff or `retry_after`, a pacer's postponement, a held chat's messages put back) and the
    latest live lease of one being sent (an attempt whose outcome is unknown, left by a
    worker that stopped). The worker that made these holds kept them in memory; this is how a
    worker started after it learns them, so that a message committed meanwhile does not
    overtake them. Recipients with nothing held are not in the result.

    A live lease may also be another worker's that is still running (two processes
    overlapping at a restart): its chat then waits here until that lease runs out, up to a
    lease's length, while the other worker goes on with its own run. Neither knows the
    other's holds; the README's "Running several processes" asks for one delivering process."""
    held_until = func.max(
        case(
            (Message.status == MessageStatus.SENDING, Message.claimed_until),
            else_=Message.next_attempt_at,
        )
    )
    # The chain as text: PostgreSQL cannot group by a json value.
    chain = cast(Message.channels, String)
    rows = await session.execute(
        select(Message.recipient_id, chain, Message.channel_index, held_until)
        .where(
            # The carried test in each branch, as in _due: so SQLite searches each in
            # ix_messages_due_in_order instead of reading every row (the delivered history).
            or_(
                and_(
                    Message.carried_by.is_(None),
                    Message.status == MessageStatus.QUEUED,
                    Message.next_attempt_at > now,
                ),
                and_(
                    Message.carried_by.is_(None),
                    Message.status == MessageStatus.SENDING,
                    Message.claimed_until > now,
                ),
            ),
        )
        .group_by(Message.recipient_id, chain, Message.channel_index)
    )
    held: dict[int, datetime] = {}
    for recipient_id, channels, index, until in rows:
        chain_now = json.loads(channels) if channels is not None else None
        if _channel_now(chain_now, index) is Channel.TELEGRAM:
            held[recipient_id] = max(until, held.get(recipient_id, until))
    return held


async def settle_carried(
    session: AsyncSession,
    carrier_id: str,
    outcome: AttemptOutcome,
    at: datetime,
    *,
    external_id: str | None = None,
    error: str | None = None,
    channel: Channel = Channel.TELEGRAM,
    **values: Any,
) -> int:
    """Settle the messages a digest carried as the digest itself settled, each with an attempt
    (on `channel`) that names where it landed. Returns how many there were."""
    member_ids = list(
        await session.scalars(select(Message.id).where(Message.carried_by == carrier_id))
    )
    if not member_ids:
        return 0
    await _update(session, Message.id.in_(member_ids), **values)
    await _add_member_attempts(
        session, member_ids, channel, outcome, at, external_id=external_id, error=error
    )
    return len(member_ids)


async def _add_member_attempts(
    session: AsyncSession,
    member_ids: Sequence[str],
    channel: Channel,
    outcome: AttemptOutcome,
    at: datetime,
    *,
    external_id: str | None = None,
    error: str | None = None,
) -> None:
    """One attempt each for a digest's members, numbered after their earlier ones: what the
    digest's outcome was for them."""
    numbers = await next_attempt_numbers(session, [(m, channel) for m in member_ids])
    await add_attempts(
        session,
        [
            attempt_row(m, channel, numbers[m], outcome, at, external_id=external_id, error=error)
            for m in member_ids
        ],
    )


async def unfold(
    session: AsyncSession, carrier_id: str, at: datetime, *, error: str, reason: str
) -> int:
    """Give a refused digest's members back to the queue, due at `at`, each to go on its own:
    their fold counts as a failed try (an attempt on Telegram with `error`, and an attempt
    count of 1, which also keeps them from being folded again). Members without content of
    their own (folded before members kept it) stay carried. Returns how many went back."""
    # One conditional statement: only rows still carried by it (and with their content)
    # go back, and the attempts below are written for exactly those.
    returned = await core.execute(
        session,
        update(Message)
        .where(Message.carried_by == carrier_id, Message.encrypted_content.is_not(None))
        .values(
            carried_by=None,
            status=MessageStatus.QUEUED,
            next_attempt_at=at,
            claimed_until=None,
            attempt_count=1,
            channel_since=at,
            failure_reason=reason[:200],
        )
        .returning(Message.id),
    )
    member_ids = list(returned.scalars())
    if member_ids:
        await _add_member_attempts(
            session, member_ids, Channel.TELEGRAM, AttemptOutcome.RETRY, at, error=error
        )
    return len(member_ids)


def _waiting(now: datetime) -> tuple[ColumnElement[bool], ...]:
    """Queued and due, not carried, and not a digest itself (its members settle with it, not
    with a digest of digests)."""
    member = aliased(Message)
    return (
        ~select(member.id).where(member.carried_by == Message.id).exists(),
        Message.status == MessageStatus.QUEUED,
        Message.carried_by.is_(None),
        # Most of a queue is due: no reason for SQLite to search the due index for this range
        # (and sort every due row of every person) instead of reading a person's queue
        # (storage.repositories.planner).
        likely(Message.next_attempt_at <= now),
    )


def _foldable(now: datetime) -> tuple[ColumnElement[bool], ...]:
    """Waiting and never tried yet (still at the start of its chain): free to fold into a
    burst digest. A message being sent, retried or partly sent stays as it is."""
    return (
        *_waiting(now),
        Message.attempt_count == 0,
        Message.channel_index == 0,
        Message.encrypted_content.is_not(None),
    )


def may_fold(message: Message) -> bool:
    """The row-level part of `_foldable` for a message read by `waiting_of`."""
    return (
        message.attempt_count == 0
        and message.channel_index == 0
        and message.encrypted_content is not None
    )


async def waiting_of(
    session: AsyncSession, recipient_id: int, now: datetime, limit: int
) -> list[Message]:
    """A person's queued, due messages, oldest first: what a burst digest may carry (see
    `may_fold`), and those it must not overtake."""
    rows = await session.scalars(
        select(Message)
        # The index's predicate, word for word, so that SQLite and PostgreSQL see that
        # ix_messages_waiting applies: the person's queue in order, read until `limit` (it
        # sorted every due row of every person: 24 ms a pass with 25,000 queued).
        .where(text(QUEUED_NOT_CARRIED), Message.recipient_id == recipient_id, *_waiting(now))
        .order_by(Message.created_at, Message.id)
        .limit(limit)
    )
    return list(rows)


async def fold(
    session: AsyncSession, message_ids: Sequence[str], carrier_id: str, now: datetime
) -> bool:
    """Hand the messages to their carrier if they are all still foldable; False means a worker
    took one meanwhile: roll back. Each keeps its content until the carrier settles (see
    `settle_carried` and `unfold`)."""
    taken = await _update(
        session, *by_key(Message.id.in_(message_ids), *_foldable(now)), carried_by=carrier_id
    )
    return taken == len(message_ids)
