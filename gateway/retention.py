"""Retention: when a message's `retention_expires_at` passes, the gateway forgets it.

Content is wiped at delivery already; at the deadline the record goes too (metadata and
attempts). A message still undelivered then is dropped, and its recipient told once (a notice
in their General topic, created in the same commit that drops it). The same job forgets the
copies of the bot's messages that Telegram no longer lets it delete.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.content_cipher import ContentCipher
from gateway.ephemeral import DELETE_WINDOW
from gateway.notices import notice
from gateway.scheduling import DueWork, OnSchedule
from storage.repositories import copies, groups, retention
from storage.types import utcnow

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def _expired_notice(count: int) -> str:
    return (
        f"⌛ {count} message(s) expired before they could be delivered here: their retention "
        "ran out. Nothing of them is kept."
    )


class RetentionPurger(OnSchedule):
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        cipher: ContentCipher,
        scheduler: AsyncIOScheduler,
        *,
        on_notice: Callable[[], None],
        clock: Clock = utcnow,
        sweep_interval: timedelta = timedelta(seconds=60),
        batch_size: int = 500,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._cipher = cipher
        self._on_notice = on_notice
        self._clock = clock
        self._batch_size = batch_size
        self.purged = 0
        self.expired_undelivered = 0
        self._due = DueWork(
            scheduler,
            "retention",
            self.purge_due,
            self._next_due,
            clock=clock,
            sweep_interval=sweep_interval,
            batch_size=batch_size,
        )

    async def purge_due(self) -> int:
        """One batch: drop the records past their deadline; how many were dropped."""
        now = self._clock()
        async with self._sessionmaker() as session:
            expired = await retention.expired(session, now, self._batch_size)
            # A digest that expires undelivered takes the messages it carries with it.
            carried = await retention.carried_from_senders(
                session, [e.message_id for e in expired if e.undelivered and not e.from_sender]
            )
            ours = await retention.drop_expired(session, [e.message_id for e in expired], now)
            # Only what someone sent is reported, once: by the process whose DELETE removed it;
            # the gateway's own notices are not (an undeliverable notice must not beget one).
            # Undelivered as the DELETE found it: a worker may have delivered it since the read.
            lost: Counter[int] = Counter()
            for e in expired:
                if ours.get(e.message_id, False):
                    lost[e.recipient_id] += carried.get(e.message_id, 0) + int(e.from_sender)
            lost = +lost  # drop the zero counts (the gateway's own notices)
            told = False
            for user_id, count in lost.items():
                if await groups.linked_group_of(session, user_id) is not None:
                    session.add(notice(self._cipher, user_id, _expired_notice(count), now))
                    told = True
            forgotten = await copies.forget_undeletable(session, now - DELETE_WINDOW)
            await session.commit()
        if expired or forgotten:
            log.info(
                "retention: %d record(s) purged (%d undelivered), %d old copies forgotten",
                len(expired),
                sum(lost.values()),
                forgotten,
            )
        self.purged += len(expired)
        self.expired_undelivered += sum(lost.values())
        if told:
            self._on_notice()
        return len(expired)

    async def _next_due(self) -> datetime | None:
        async with self._sessionmaker() as session:
            return await retention.next_deadline(session)
