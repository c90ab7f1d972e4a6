"""Releasing messages held for quiet hours: alone, or as one digest per topic.

Held messages live in the database (status `deferred`, content sealed as in the outbox, due at
`next_attempt_at`), so nothing depends on the scheduler's memory: at start the releaser looks
up the earliest due time and schedules a run for it (at once if it passed while the gateway was
down), each submission of a held message may move that run earlier, and a periodic sweep is
the safety net (and picks up messages that other processes held).

Jobs run on APScheduler's AsyncIOScheduler in the gateway's event loop. Times come from the
injected clock; the scheduler's own timer is real time, so a due time is turned into a real
delay from the clock's "now".
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.content_cipher import ContentCipher, ContentDecryptError
from gateway.digest import DigestItem, compose_digest
from gateway.outbox_payload import OutboxPayload
from gateway.routing import QuietHours
from storage.enums import MessageStatus, Priority
from storage.models import Message, UserPreferences
from storage.repositories import deferred
from storage.types import utcnow

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
RELEASE_JOB = "release-deferred"
SWEEP_JOB = "release-deferred-sweep"
_PRIORITY_ORDER = (Priority.LOW, Priority.NORMAL, Priority.HIGH, Priority.URGENT)


@dataclass
class _Held:
    message: Message
    payload: OutboxPayload | None  # None: it does not open; it is released alone to fail


def _topic_key(held: _Held) -> tuple[int, str]:
    """Messages for the same topic of the same person go into one digest."""
    message = held.message
    if held.payload is not None and held.payload.thread_id is not None:
        return message.recipient_id, f"thread:{held.payload.thread_id}"
    return message.recipient_id, f"category:{message.category.value}"


class DeferredReleaser:
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
        self._scheduler = scheduler
        self._on_released = on_released
        self._clock = clock
        self._sweep_interval = sweep_interval
        self._batch_size = batch_size
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Schedule the sweep and the first release. The scheduler must be running."""
        self._scheduler.add_job(
            self.run,
            "interval",
            seconds=self._sweep_interval.total_seconds(),
            id=SWEEP_JOB,
            replace_existing=True,
            coalesce=True,
        )
        await self._schedule_next()

    def release_at(self, when: datetime) -> None:
        """A message is held until `when`: make sure a release runs then (or earlier)."""
        run_date = datetime.now(UTC) + (when - self._clock())
        job = self._scheduler.get_job(RELEASE_JOB)
        if job is not None and job.next_run_time is not None and job.next_run_time <= run_date:
            return
        self._scheduler.add_job(
            self.run,
            "date",
            run_date=run_date,
            id=RELEASE_JOB,
            replace_existing=True,
            misfire_grace_time=None,  # late is better than never (e.g. after a suspend)
        )

    async def run(self) -> int:
        """Release everything due now, then schedule the next release; the scheduler's job."""
        released = 0
        try:
            while True:
                count = await self.release_due()
                released += count
                if count < self._batch_size:
                    break
        except Exception as exc:
            # Class only: the text could quote SQL parameters. The sweep tries again.
            log.error("releasing deferred messages failed: %s", type(exc).__name__)
        await self._schedule_next()
        return released

    async def release_due(self) -> int:
        """One pass: move held messages whose window ended into the outbox; how many moved."""
        async with self._lock, self._sessionmaker() as session:
            now = self._clock()
            rows = await deferred.due(session, now, self._batch_size)
            if not rows:
                return 0
            by_topic: dict[tuple[int, str], list[_Held]] = {}
            for row in rows:
                held = _Held(row, self._open(row))
                by_topic.setdefault(_topic_key(held), []).append(held)
            digests = 0
            for members in by_topic.values():
                if not await self._release(session, members, now):
                    await session.rollback()
                    log.warning("deferred messages taken by another releaser; pass dropped")
                    return 0
                digests += len(members) > 1
            await session.commit()
        log.info("released %d deferred message(s), %d digest(s)", len(rows), digests)
        self._on_released()
        return len(rows)

    def _open(self, row: Message) -> OutboxPayload | None:
        if row.encrypted_content is None:
            return None
        try:
            return OutboxPayload.from_dict(self._cipher.open(row.id, row.encrypted_content))
        except (ContentDecryptError, KeyError, TypeError, ValueError):
            return None

    async def _release(
        self, session: AsyncSession, members: Sequence[_Held], now: datetime
    ) -> bool:
        readable = [m for m in members if m.payload is not None]
        if len(members) == 1 or len(readable) < len(members):
            # One message goes out as it is; so do unreadable ones, for the worker to fail
            # with the usual reason (nothing to put in a digest).
            ids = [m.message.id for m in members]
            return await deferred.take(
                session, ids, status=MessageStatus.QUEUED, next_attempt_at=now
            )
        return await self._digest(session, members, now)

    async def _digest(self, session: AsyncSession, members: Sequence[_Held], now: datetime) -> bool:
        first = members[0].message
        zone = ZoneInfo(await self._timezone(session, first.recipient_id))
        payload = compose_digest(
            [
                DigestItem(m.message.created_at, m.message.category, m.payload)
                for m in members
                if m.payload
            ],
            zone,
        )
        digest_id = str(uuid.uuid4())
        session.add(
            Message(
                id=digest_id,
                sender_token_id=None,  # the gateway's own message
                recipient_id=first.recipient_id,
                category=first.category,
                priority=max((m.message.priority for m in members), key=_PRIORITY_ORDER.index),
                status=MessageStatus.QUEUED,
                encrypted_content=self._cipher.seal(digest_id, payload.to_dict()),
                created_at=now,
                next_attempt_at=now,
                retention_expires_at=max(m.message.retention_expires_at for m in members),
            )
        )
        await session.flush()  # the carriers' foreign key points at it
        # The members' content now lives in the digest only; they settle when it does.
        return await deferred.take(
            session,
            [m.message.id for m in members],
            status=MessageStatus.QUEUED,
            next_attempt_at=now,
            carried_by=digest_id,
            encrypted_content=None,
        )

    async def _timezone(self, session: AsyncSession, user_id: int) -> str:
        row = await session.get(UserPreferences, user_id)
        return row.timezone if row is not None else QuietHours().timezone

    async def _schedule_next(self) -> None:
        async with self._sessionmaker() as session:
            when = await deferred.next_release(session)
        if when is not None:
            self.release_at(when)
