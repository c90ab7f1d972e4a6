"""Scheduled deletion of the bot's messages in personal logs (self-destruct, unread ephemeral).

Due deletions are rows in telegram_copies (`delete_at`), written in the same commit that marks
a message delivered, so a restart loses none: gateway.scheduling runs this at the earliest due
time, overdue ones at once, with a sweep as the safety net. Deletions due together in one chat
go out as deleteMessages batches of up to 100. A message already gone counts as deleted; other
failures are retried with backoff until Telegram's 48-hour limit comes too close, and then the
person is told in their General topic which could not be deleted.
"""

from __future__ import annotations

import html
import logging
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from aiogram import Bot
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.channels.base import ChannelError, DestinationGone, RateLimited
from gateway.content_cipher import ContentCipher
from gateway.delivery.backoff import backoff_delay
from gateway.ephemeral import DELETE_WINDOW
from gateway.notices import notice
from gateway.scheduling import DueWork, OnSchedule
from gateway.telegram_deletion import DeletionResult, delete_messages
from storage.models import TelegramCopy
from storage.repositories import copies, groups
from storage.types import utcnow

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
# Retries run through a Telegram outage of hours: the real bound is the 48-hour window.
MAX_ATTEMPTS = 30
RETRY_BASE_SECONDS = 30.0
RETRY_CAP_SECONDS = 1800.0
OVERDUE_GRACE = timedelta(minutes=1)  # a deletion later than this counts as overdue


@dataclass
class DeletionStats:
    """Since the process started; the pending figures come from the database."""

    deleted: int = 0  # deleted, or found already gone
    given_up: int = 0
    last_lateness_seconds: float | None = None  # due → done, for the latest batch
    max_lateness_seconds: float = 0.0


def _could_not_delete(count: int, reason: str) -> str:
    return (
        f"🗑 {count} message(s) in this log could not be deleted as scheduled "
        f"({html.escape(reason)}). "
        "Telegram lets me delete messages only within 48 hours of sending them, so please "
        "delete them by hand."
    )


class CopyDeleter(OnSchedule):
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        bot: Bot,
        cipher: ContentCipher,
        scheduler: AsyncIOScheduler,
        *,
        on_notice: Callable[[], None],
        clock: Clock = utcnow,
        rng: Callable[[], float] = random.random,
        sweep_interval: timedelta = timedelta(seconds=30),
        batch_size: int = 1000,
    ) -> None:
        """`on_notice` is called after a notice to a person was queued (wake the worker)."""
        self._sessionmaker = sessionmaker
        self._bot = bot
        self._cipher = cipher
        self._on_notice = on_notice
        self._clock = clock
        self._rng = rng
        self.stats = DeletionStats()
        self._due = DueWork(
            scheduler,
            "delete-copies",
            self.delete_due,
            self._next_due,
            clock=clock,
            sweep_interval=sweep_interval,
            batch_size=batch_size,
        )
        self._batch_size = batch_size

    async def delete_due(self) -> int:
        """One pass over what is due now; returns how many copies it handled (any outcome)."""
        async with self._sessionmaker() as session:
            rows = await copies.due(session, self._clock(), self._batch_size)
        by_chat: dict[int, list[TelegramCopy]] = {}
        for row in rows:
            by_chat.setdefault(row.chat_id, []).append(row)
        for chat_id, chat_rows in by_chat.items():
            result = await delete_messages(
                self._bot, chat_id, [r.telegram_message_id for r in chat_rows]
            )
            await self._settle(chat_id, chat_rows, result)
        return len(rows)

    async def _settle(
        self, chat_id: int, rows: Sequence[TelegramCopy], result: DeletionResult
    ) -> None:
        now = self._clock()
        done = set(result.done)
        finished = [r for r in rows if r.telegram_message_id in done]
        given_up: list[tuple[TelegramCopy, ChannelError]] = []
        async with self._sessionmaker() as session:
            await copies.drop(session, [r.id for r in finished])
            for row in rows:
                error = result.failed.get(row.telegram_message_id)
                if error is None:
                    continue
                if not await self._retry_later(session, row, error, now):
                    given_up.append((row, error))
            await copies.drop(session, [r.id for r, _ in given_up])
            notified = await self._report(session, chat_id, given_up, now)
            await session.commit()
        if finished:
            lateness = max((now - r.delete_at).total_seconds() for r in finished if r.delete_at)
            self.stats.deleted += len(finished)
            self.stats.last_lateness_seconds = max(lateness, 0.0)
            self.stats.max_lateness_seconds = max(self.stats.max_lateness_seconds, lateness)
            log.info("chat %s: %d scheduled deletion(s) done", chat_id, len(finished))
        if given_up:
            self.stats.given_up += len(given_up)
            log.warning("chat %s: gave up on %d deletion(s)", chat_id, len(given_up))
        if notified:
            self._on_notice()

    async def _retry_later(
        self, session: AsyncSession, row: TelegramCopy, error: ChannelError, now: datetime
    ) -> bool:
        """Schedule another try; False when there is no point (the caller gives up)."""
        if isinstance(error, DestinationGone):
            return False  # the bot was removed or the chat is gone: it never will be
        counted = not isinstance(error, RateLimited)
        attempts = row.delete_attempts + (1 if counted else 0)
        if isinstance(error, RateLimited):
            delay = error.retry_after
        else:
            delay = backoff_delay(
                attempts, self._rng, base=RETRY_BASE_SECONDS, cap=RETRY_CAP_SECONDS
            )
        retry_at = now + timedelta(seconds=delay)
        if attempts >= MAX_ATTEMPTS or retry_at >= row.sent_at + DELETE_WINDOW:
            return False
        await session.execute(
            update(TelegramCopy)
            .where(TelegramCopy.id == row.id)
            .values(
                retry_at=retry_at,
                delete_attempts=attempts,
                last_error=f"{error.error_class}: {error.detail}"[:200],
            ),
            execution_options={"synchronize_session": False},
        )
        return True

    async def _report(
        self,
        session: AsyncSession,
        chat_id: int,
        given_up: Sequence[tuple[TelegramCopy, ChannelError]],
        now: datetime,
    ) -> bool:
        """Tell each person once per pass, in their log's General topic, if it still is theirs."""
        per_user = Counter(row.user_id for row, _ in given_up)
        reasons = {row.user_id: error.detail for row, error in given_up}
        told = False
        for user_id, count in per_user.items():
            group = await groups.linked_group_of(session, user_id)
            if group is None or group.chat_id != chat_id:
                continue  # the log is gone or moved: nowhere to tell them
            session.add(
                notice(self._cipher, user_id, _could_not_delete(count, reasons[user_id]), now)
            )
            told = True
        return told

    async def _next_due(self) -> datetime | None:
        async with self._sessionmaker() as session:
            return await copies.next_due(session)
