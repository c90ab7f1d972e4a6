"""Releasing messages held for quiet hours: alone, or as one digest per topic.

Held messages live in the database (status `deferred`, content sealed as in the outbox, due at
`next_attempt_at`); gateway.scheduling runs the release when the earliest of them comes due,
also after a restart, with a sweep every minute as the safety net.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.content_cipher import ContentCipher, ContentDecryptError
from gateway.digest import DigestItem, compose_digest, place
from gateway.digest_rows import carrier_row
from gateway.outbox_payload import OutboxPayload
from gateway.preferences import zone_or_utc
from gateway.scheduling import DueWork, OnSchedule
from storage.enums import Category, Channel, MessageStatus
from storage.models import Message, UserPreferences
from storage.repositories import deferred, groups
from storage.types import utcnow

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
RELEASE = "release-deferred"


@dataclass
class _Held:
    message: Message
    payload: OutboxPayload | None  # None: it does not open; it is released alone to fail


class _TakenElsewhere(Exception):
    """Another releaser moved some of these messages first: this whole pass is dropped."""


def _topic_key(
    held: _Held, threads: Mapping[Category, int | None] | None
) -> tuple[int, str, tuple[str, ...]]:
    """Messages that land in the same topic of the same person, by the same fallback chain, go
    into one digest (which takes that chain)."""
    message = held.message
    thread = held.payload.thread_id if held.payload is not None else None
    return (
        *place(message.recipient_id, message.category, thread, threads),
        tuple(message.channels),
    )


class DeferredReleaser(OnSchedule):
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        cipher: ContentCipher,
        scheduler: AsyncIOScheduler,
        *,
        on_released: Callable[[], None],
        clock: Clock = utcnow,
        sweep_interval: timedelta = timedelta(seconds=60),
        batch_size: int = 500,
    ) -> None:
        """`on_released` is called after a release committed (wake the delivery worker)."""
        self._sessionmaker = sessionmaker
        self._cipher = cipher
        self._on_released = on_released
        self._clock = clock
        self._batch_size = batch_size
        self._due = DueWork(
            scheduler,
            RELEASE,
            self.release_due,
            self._next_release,
            clock=clock,
            sweep_interval=sweep_interval,
            batch_size=batch_size,
        )

    @property
    def timer_job(self) -> str:
        return self._due.timer_job

    async def release_due(self) -> int:
        """One pass: move held messages whose window ended into the outbox; how many moved."""
        async with self._sessionmaker() as session:
            now = self._clock()
            rows = await deferred.due(session, now, self._batch_size)
            if not rows:
                return 0
            by_topic: dict[tuple[int, str, tuple[str, ...]], list[_Held]] = {}
            threads: dict[int, Mapping[Category, int | None] | None] = {}
            for row in rows:
                if row.recipient_id not in threads:
                    threads[row.recipient_id] = await self._threads(session, row.recipient_id)
                held = _Held(row, self._open(row))
                by_topic.setdefault(_topic_key(held, threads[row.recipient_id]), []).append(held)
            digests = released = 0
            for members in by_topic.values():
                try:
                    # A savepoint per topic: one that fails (a bug, bad data) must not hold
                    # back everybody else's messages; it is logged and retried next pass.
                    async with session.begin_nested():
                        digests += await self._release(session, members, now)
                    released += len(members)
                except _TakenElsewhere:
                    await session.rollback()
                    log.warning("deferred messages taken by another releaser; pass dropped")
                    return 0
                except Exception as exc:
                    log.error(
                        "releasing %d message(s) for user %s failed: %s",
                        len(members),
                        members[0].message.recipient_id,
                        type(exc).__name__,
                    )
            await session.commit()
        if not released:
            return 0
        log.info("released %d deferred message(s), %d digest(s)", released, digests)
        self._on_released()
        return released

    def _open(self, row: Message) -> OutboxPayload | None:
        if row.encrypted_content is None:
            return None
        try:
            return OutboxPayload.from_dict(self._cipher.open(row.id, row.encrypted_content))
        except (ContentDecryptError, KeyError, TypeError, ValueError):
            return None

    async def _release(self, session: AsyncSession, members: Sequence[_Held], now: datetime) -> int:
        """Queue the topic's held messages; how many digests that made (0 or 1)."""
        digestible = [
            m
            for m in members
            if m.payload is not None
            and m.payload.digestible
            # Digests are Telegram messages: only messages starting their chain there.
            and m.message.channels[:1] == [Channel.TELEGRAM.value]
            and m.message.channel_index == 0
        ]
        if len(digestible) < 2:
            digestible = []
        # Alone: a single message; unreadable ones (for the worker to fail with the usual
        # reason); and self-destructing or ephemeral ones, whose copies must go on their own.
        alone = [m.message.id for m in members if m not in digestible]
        if alone and not await deferred.take(
            session, alone, status=MessageStatus.QUEUED, next_attempt_at=now
        ):
            raise _TakenElsewhere
        if not digestible:
            return 0
        if not await self._digest(session, digestible, now):
            raise _TakenElsewhere
        return 1

    async def _digest(self, session: AsyncSession, members: Sequence[_Held], now: datetime) -> bool:
        first = members[0].message
        zone = zone_or_utc(await self._timezone(session, first.recipient_id))
        payload = compose_digest(
            [
                DigestItem(m.message.created_at, m.message.category, m.payload)
                for m in members
                if m.payload
            ],
            zone,
        )
        carrier = carrier_row(self._cipher, [m.message for m in members], payload, now)
        session.add(carrier)
        await session.flush()  # the carriers' foreign key points at it
        # The members settle when the digest does (their content is wiped then; kept until
        # then for the case Telegram refuses the digest and they go one by one).
        return await deferred.take(
            session,
            [m.message.id for m in members],
            status=MessageStatus.QUEUED,
            next_attempt_at=now,
            carried_by=carrier.id,
        )

    async def _timezone(self, session: AsyncSession, user_id: int) -> str | None:
        row = await session.get(UserPreferences, user_id)
        return row.timezone if row is not None else None

    async def _threads(
        self, session: AsyncSession, user_id: int
    ) -> Mapping[Category, int | None] | None:
        group = await groups.linked_group_of(session, user_id)
        if group is None:
            return None
        return {topic.category: topic.message_thread_id for topic in group.topics}

    async def _next_release(self) -> datetime | None:
        async with self._sessionmaker() as session:
            return await deferred.next_release(session)
