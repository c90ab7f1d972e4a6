"""Burst coalescing: when a personal log's queue holds more than its Telegram budget can send
soon, the queued messages of each topic are folded into one digest message.

Telegram lets a group take about 20 messages a minute. A burst of 500 alerts sent one by one
would trickle in for 25 minutes; folded, it is a handful of full messages (each up to 4096
characters) within seconds. Folding is done by the delivery worker just before it sends a
chat's queue, and only when pacing is on and the queue exceeds the chat's budget over
`HORIZON` (what its chat and group buckets could grant in that time).

Which messages fold: queued, due, never tried (attempt 0 at the start of the chain), Telegram
first in their chain, no part sent yet, digestible (no self-destruct or ephemeral copy to delete
on its own) and with at least an hour of retention left (a digest keeps its members' longest).
They are grouped like quiet-hours digests, by topic and fallback chain, in order: a message of
the topic that may not fold ends the run (folding past it would overtake it), a topic with a
single foldable message keeps it as it is, and a long run makes several digests of at most
`MAX_DIGEST_CHARS`. The digest carries each message whole, oldest first, with its time to the
second, and takes its oldest member's place in the queue. The members point to the digest
(`carried_by`, visible in GET /messages/{id}) and settle when the digest does; each keeps its
own sealed content until then (it goes with the digest's outcome), so that a digest Telegram
refuses is unfolded and its members go one by one (`gateway.delivery.attempt`). Folding is a
conditional UPDATE on the same state the worker's claim needs, so a message is either folded or
claimed, never both (also with several workers).
While the pacer holds a chat, nothing of it is folded: it all folds, in order, when the chat
may send again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.content_cipher import ContentCipher, ContentDecryptError
from gateway.delivery import progress
from gateway.digest import DigestItem, compose_digest, place
from gateway.digest_rows import carrier_row
from gateway.outbox_payload import OutboxPayload
from gateway.preferences import zone_or_utc
from storage.enums import Category, Channel
from storage.models import Message, UserPreferences
from storage.repositories import groups, outbox

log = logging.getLogger(__name__)

# "Soon": a queue longer than the chat's budget over this many seconds is folded.
HORIZON = 10.0
# At most this many messages are read, folded and committed at once (bounds memory and one
# commit); a fold goes on with the next as many of them as it takes, up to MAX_FOLD_CHUNKS.
MAX_FOLD = 1000
# A flood of tens of thousands into one group is folded whole when the chat may send: left
# unfolded, the rest would stand due (for the time the chat was held until) ahead of every
# other chat's newer messages in the worker's look for due work, each pass putting back only
# the first of them.
MAX_FOLD_CHUNKS = 50
WHY = "arrived in a burst"
# A digest holds about this much content at most (some 16 Telegram messages): its lease covers
# every part, and a crash mid-send leaves its members waiting for that lease.
MAX_DIGEST_CHARS = 16 * 4096
# A message whose retention ends sooner is not folded: a digest keeps the longest retention of
# its members, and must not deliver a message long after its own deadline.
MIN_RETENTION_LEFT = timedelta(hours=1)

# (chat id, is a group) -> how many sends that chat's buckets can grant within HORIZON.
Budget = Callable[[int, bool], float]


@dataclass(frozen=True)
class Folded:
    """One digest made: its id and the members it carries, oldest first."""

    carrier_id: str
    member_ids: tuple[str, ...]


def requeue(queue: Sequence[outbox.Candidate], folded: Sequence[Folded]) -> list[outbox.Candidate]:
    """The run's queue after folding: each digest takes the place of its first member there,
    the digests made before it (`folded` is oldest first) just ahead of it; its other members
    drop out. Digests with no member in the run (older messages, put back while the chat was
    held, are due later than the newest) thus go before the newer ones; those after the last
    placed one go last."""
    carrier_of = {m: index for index, f in enumerate(folded) for m in f.member_ids}
    placed = 0  # the digests before this one are in the result
    result: list[outbox.Candidate] = []
    for candidate in queue:
        index = carrier_of.get(candidate.message_id)
        if index is None:
            result.append(candidate)
        elif index >= placed:
            result.extend(
                outbox.Candidate(f.carrier_id, candidate.recipient_id, candidate.channel)
                for f in folded[placed : index + 1]
            )
            placed = index + 1
    recipient = queue[0].recipient_id if queue else 0
    result.extend(outbox.Candidate(f.carrier_id, recipient) for f in folded[placed:])
    return result


@dataclass(frozen=True)
class Queued:
    """A queued message as folding sees it: `payload` None if it does not open; `foldable`
    whether it may go into a digest."""

    row: Message
    payload: OutboxPayload | None
    foldable: bool


def _open(cipher: ContentCipher, row: Message, now: datetime) -> Queued:
    if row.encrypted_content is None:
        return Queued(row, None, False)
    try:
        sealed = cipher.open(row.id, row.encrypted_content)
        payload = OutboxPayload.from_dict(sealed)
    except (ContentDecryptError, KeyError, TypeError, ValueError):
        return Queued(row, None, False)  # the worker fails it with the usual reason
    foldable = (
        outbox.may_fold(row)
        and row.channels[:1] == [Channel.TELEGRAM.value]
        and payload.digestible
        and not progress.any_sent(sealed)
        and row.retention_expires_at - now >= MIN_RETENTION_LEFT
    )
    return Queued(row, payload, foldable)


def plan_folds(
    queued: Sequence[Queued],
    threads: Mapping[Category, int | None] | None,
    *,
    max_chars: int = MAX_DIGEST_CHARS,
) -> list[list[tuple[Message, OutboxPayload]]]:
    """The groups to fold, oldest first: messages for the same place, in order, at least two,
    by the same fallback chain (a digest goes the way of its members) and up to `max_chars`
    of content each. A run ends where the chain changes: the next one starts there, so a
    digest never goes out before a message of its place that came between its members. A
    message that may not be folded ends the run of its place (the ones after it would
    overtake it), so its place folds no more in this pass."""
    runs: dict[tuple[int, str], list[list[tuple[Message, OutboxPayload]]]] = {}
    sizes: dict[tuple[int, str], int] = {}
    closed: set[tuple[int, str]] = set()
    for item in queued:
        row, payload = item.row, item.payload
        thread = payload.thread_id if payload is not None else None
        key = place(row.recipient_id, row.category, thread, threads)
        if key in closed:
            continue
        if not item.foldable or payload is None:
            closed.add(key)
            continue
        chunks = runs.setdefault(key, [[]])
        last = chunks[-1]
        chain_changes = bool(last) and last[-1][0].channels != row.channels
        if chain_changes or (last and sizes[key] + payload.size() > max_chars):
            chunks.append([])
            sizes[key] = 0
        chunks[-1].append((row, payload))
        sizes[key] = sizes.get(key, 0) + payload.size()
    groups = [chunk for chunks in runs.values() for chunk in chunks if len(chunk) >= 2]
    return sorted(groups, key=lambda chunk: (chunk[0][0].created_at, chunk[0][0].id))


class BurstCoalescer:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        cipher: ContentCipher,
        clock: Callable[[], datetime],
    ) -> None:
        self._sessionmaker = sessionmaker
        self._cipher = cipher
        self._clock = clock

    async def fold(self, recipient_id: int, queued: int, budget: Budget) -> list[Folded]:
        """Fold the person's burst if `queued` (their due Telegram messages this run) is more
        than `budget` grants for their personal log soon. Returns the digests made, oldest
        first: of the whole queue, `MAX_FOLD` messages at a time, each in a transaction."""
        async with self._sessionmaker() as session:
            group = await groups.linked_group_of(session, recipient_id)
            if group is None or queued <= budget(group.chat_id, True):
                return []
            threads = {topic.category: topic.message_thread_id for topic in group.topics}
            zone = zone_or_utc(await self._timezone(session, recipient_id))
        made: list[Folded] = []
        for _ in range(MAX_FOLD_CHUNKS):
            try:
                folded, read = await self._fold_chunk(recipient_id, threads, zone)
            except Exception as exc:
                if not made:
                    raise
                # What the earlier chunks folded is committed: the run must send those digests
                # (in their members' places) rather than lose sight of them.
                log.error("folding on for user %s failed: %s", recipient_id, type(exc).__name__)
                break
            made.extend(folded)
            if not folded or read < MAX_FOLD:
                break  # the queue is folded, or what is left of it cannot be
        if made:
            log.info(
                "folded %d queued message(s) of user %s into %d digest(s)",
                sum(len(f.member_ids) for f in made),
                recipient_id,
                len(made),
            )
        return made

    async def _fold_chunk(
        self, recipient_id: int, threads: Mapping[Category, int | None], zone: ZoneInfo
    ) -> tuple[list[Folded], int]:
        """The digests of the oldest `MAX_FOLD` waiting messages, committed, and how many were
        read."""
        async with self._sessionmaker() as session:
            now = self._clock()
            rows = await outbox.waiting_of(session, recipient_id, now, MAX_FOLD)
            # Opening and grouping a thousand messages, and composing and sealing their digests,
            # is tens of milliseconds of CPU: done on a thread (in one hand-over), the event
            # loop goes on answering requests meanwhile (it takes the GIL back every few
            # milliseconds). Only loaded rows and new objects are used there, never the session.
            # Every digest is composed before the first write: from then on the transaction
            # holds the write lock (in this process, storage.sqlite_driver's gate), which the
            # API's commits of new messages wait for.
            digests = await asyncio.to_thread(self._compose, rows, threads, zone, now)
            if not digests:
                return [], len(rows)
            made: list[Folded] = []
            for members, carrier in digests:
                folded = await self._fold_one(session, members, carrier, now)
                if folded is None:
                    await session.rollback()
                    log.info("burst of user %s changed while folding; left as it is", recipient_id)
                    return [], len(rows)
                made.append(folded)
            await session.commit()
        return made, len(rows)

    async def _fold_one(
        self,
        session: AsyncSession,
        members: Sequence[tuple[Message, OutboxPayload]],
        carrier: Message,
        now: datetime,
    ) -> Folded | None:
        session.add(carrier)
        await session.flush()  # the members' foreign key points at it
        ids = tuple(row.id for row, _ in members)
        if not await outbox.fold(session, ids, carrier.id, now):
            return None
        return Folded(carrier.id, ids)

    def _compose(
        self,
        rows: Sequence[Message],
        threads: Mapping[Category, int | None],
        zone: ZoneInfo,
        now: datetime,
    ) -> list[tuple[list[tuple[Message, OutboxPayload]], Message]]:
        """Each digest to make of `rows`: its members and its row, sealed."""
        plans = plan_folds([_open(self._cipher, row, now) for row in rows], threads)
        return [(members, self._carrier(members, zone, now)) for members in plans]

    def _carrier(
        self, members: Sequence[tuple[Message, OutboxPayload]], zone: ZoneInfo, now: datetime
    ) -> Message:
        """The digest of `members`, sealed in a new row that takes the oldest one's place."""
        payload = compose_digest(
            [DigestItem(row.created_at, row.category, p) for row, p in members],
            zone,
            why=WHY,
            full=True,
            silent=all(p.silent for _, p in members),
        )
        rows = [row for row, _ in members]
        return carrier_row(self._cipher, rows, payload, now, in_their_place=True)

    async def _timezone(self, session: AsyncSession, user_id: int) -> str | None:
        row = await session.get(UserPreferences, user_id)
        return row.timezone if row is not None else None
