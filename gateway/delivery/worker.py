"""The delivery worker: picks up due outbox messages and delivers them, in the gateway process.

Several workers (in one process or many) may run against one database: messages are claimed
with a conditional UPDATE before they are sent, so at most one worker sends each at a time.
A worker takes each recipient's personal log from its process's cache of recipient state,
which that process's writes keep fresh (the bot's, in the one `all` process); a worker in
another process would see those writes only when its entry expires (a minute), and routes
then re-read a topic before making one (`gateway.delivery.routes`). A
chat's queue is claimed in one statement (one per message cost a transaction each), and what
the run then does not try (the chat turned out to be held back) is handed back. Messages of one
recipient (one personal log chat) go out one after another, in order; different chats are
served in parallel, a bounded number at a time (CONCURRENCY, or PACED_CONCURRENCY while pacing;
each pass taking up to BATCH_SIZE due messages and a chat at most CHAT_SHARE of them).

Telegram sends are paced (`gateway.delivery.pacing`): before each part of a message the pacer
is asked. A short wait (up to the worker's patience, sized so that a few chats' sends can queue
for the bot's global bucket at once: `patience_for`) is slept through with the send reserved;
a longer one (the chat's or group's budget is spent, or a 429 blocks it) sends the message back
to the queue with the parts sent so far, holds that chat's later Telegram messages until then
(`outbox.postpone`) and the run goes on with the other chats: one chat waiting never holds up
another, and the next wakeup is when the chat may send again. A 429 also slows the chat's
buckets down for its `retry_after`. Messages on other channels are not paced by these buckets,
nor held back by them. Urgent and high messages come first in every run (`outbox.due`).

Before a chat's queue is sent, a burst longer than the chat's budget for the next seconds is
folded into one digest per topic (`gateway.delivery.coalesce`): fewer, fuller messages instead
of a trickle at the group's 20 a minute.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aiogram import Bot
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway import audit
from gateway.channels.fallback import FallbackChannel
from gateway.channels.telegram import TelegramChannel
from gateway.content_cipher import ContentCipher
from gateway.delivery import coalesce
from gateway.delivery.attempt import Clock, Deliverer
from gateway.delivery.chain import DEFAULT_POLICIES, RetryPolicy
from gateway.delivery.claim import Claimed, Policy, current_channel
from gateway.delivery.elsewhere import Elsewhere
from gateway.delivery.pacing import SHORT_MARGIN, Pacer, TelegramRates
from gateway.delivery.routes import CreateTopic
from gateway.personal_log import create_topic as personal_log_create_topic
from gateway.recipient_cache import RecipientCache
from storage import waiting
from storage.enums import Channel
from storage.repositories import messages, outbox
from storage.types import utcnow

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]

# The longest the worker sleeps in place for a granted send (at least); longer waits postpone.
PATIENCE = 0.5
MAX_PATIENCE = 5.0
# Chats at once whose sends may wait in place for the global bucket (see patience_for).
PATIENT_CHATS = 8
# Woken this much after a reserved slot, the send takes a new slot instead (see before_send).
LATE = SHORT_MARGIN / 2
# Seconds after a run that tried nothing before the next may start (see run): a held chat's
# new messages wait for its buckets anyway, far longer than this.
HELD_RUN_SPACING = 0.02
# Passes a run makes at most while each finds nothing but held chats' Telegram messages (see
# run_once): enough to get past a flood of a few thousand a second into one group.
MAX_HELD_PASSES = 20
# Chats served at once, and due messages a pass takes. A pass's look for due work, each chat's
# claim (a statement and a commit for the chat's whole share of the pass) and the wait for the
# pass's slowest chat are paid per pass and per chat, not per message: at 8 and 100 they were
# a third to a half of the delivering process's CPU under a backlog (bench/pipeline.py with 100
# people: 490 to 515 a second against 896 to 916 with these). A pass's claimed messages are in
# memory until sent: at most BATCH_SIZE texts of 64 KiB. A pass of a flood's held messages
# puts back more of them at a time, too (see run_once).
CONCURRENCY = 32
BATCH_SIZE = 1000
# Chats served at once while pacing to Telegram's limits. There the pacer sets the pace, and
# each chat's send queues for the bot's global bucket: those whose slot is further off than the
# patience are put back until it (unreserved), behind newer messages of other chats. 32 chats
# at once did that to half of them each pass, and the latency's tail grew: p99 4.0 s against
# 1.8 s from POST to sendMessage in bench/pipeline_paced.py (96.3% of the limit against 97.1%).
PACED_CONCURRENCY = PATIENT_CHATS
# A chat's share of a pass, at most: a pass waits for its slowest chat, so a chat's run stays
# as long as it was with passes of 100 (the rest of its queue goes in the next pass), and so do
# the leases of the messages it claimed and has not tried yet.
CHAT_SHARE = 100
# Chats folding a burst at once, at most: a fold holds up to coalesce.MAX_FOLD messages'
# content in memory; this keeps that bound where it was with 8 chats at once.
FOLDS_AT_ONCE = 8
# Seconds between the worker's looks for erased messages whose rendered text it keeps.
ERASED_RENDERS_EVERY = 1.0


class PacedSends:
    """The worker's pacer as the Deliverer uses it (`attempt.SendPacing`), on the worker's
    clock. Waits up to `patience` are slept through with the send reserved; longer ones are
    handed back as a time to hold the chat until."""

    def __init__(self, pacer: Pacer, clock: Clock, sleep: Sleep, patience: float) -> None:
        self.pacer = pacer
        self._clock = clock
        self._sleep = sleep
        self._patience = patience

    async def before_send(self, chat_id: int) -> datetime | None:
        # Telegram chat ids of groups and supergroups are negative, private chats positive.
        is_group = chat_id < 0
        while True:
            now = self._clock()
            wait = self.pacer.reserve(chat_id, is_group, now.timestamp(), patience=self._patience)
            if wait > self._patience:
                return now + timedelta(seconds=wait)
            if wait <= 0:
                return None
            await self._sleep(wait)
            late = (self._clock() - now).total_seconds() - wait
            if late <= LATE:
                return None
            # The event loop stalled past the slot: so did the other sleepers, and they would
            # all go at once. Drop this slot (it stays spent) and queue for a new one.
            log.debug("pacing slot missed by %.3f s; taking a new one", late)

    def rate_limited(self, chat_id: int, retry_after: float) -> None:
        self.pacer.penalise(chat_id, self._clock().timestamp(), retry_after)


def chats_at_once(rates: TelegramRates) -> int:
    """How many chats the worker serves at once by default: fewer while it paces (see
    PACED_CONCURRENCY)."""
    return CONCURRENCY if rates == TelegramRates.unlimited() else PACED_CONCURRENCY


def patience_for(concurrency: int, global_per_second: float) -> float:
    """Seconds a send may sleep in place for its slot: enough for a few chats' sends to queue
    for the global bucket, but short next to the lease (which covers a part's send and its
    wait). Not enough for every chat served at once: a pass ends with its slowest chat, so
    each second slept in place delays the next look for due work. Sized by all 32 chats (1.2
    s), another person's messages during a flood took 3.7 to 7.7 s instead of 1.3
    (bench/flood_fairness.py)."""
    queued = min(concurrency, PATIENT_CHATS)
    queue = 1.1 * queued / global_per_second if global_per_second else 0.0
    return min(MAX_PATIENCE, max(PATIENCE, queue))


@dataclass(frozen=True)
class WorkerState:
    """For the health endpoint. `last_error` is an exception class name, never a message."""

    running: bool
    last_error: str | None
    last_run_at: datetime | None
    # Telegram sends whose outcome was unknowable (each may have been delivered twice).
    unknown_send_outcomes: int = 0


class DeliveryWorker:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        bot: Bot,
        cipher: ContentCipher,
        *,
        clock: Clock = utcnow,
        rng: Callable[[], float] = random.random,
        lease: timedelta = timedelta(seconds=60),
        max_attempts: int = 8,
        poll_interval: float = 1.0,
        concurrency: int | None = None,
        batch_size: int = BATCH_SIZE,
        request_timeout: int = 20,
        create_topic: CreateTopic | None = None,
        on_deletion_scheduled: Callable[[datetime], None] = lambda when: None,
        fallbacks: Mapping[Channel, FallbackChannel[Any]] | None = None,
        public_url: str | None = None,
        policies: Mapping[Channel, RetryPolicy] = DEFAULT_POLICIES,
        rates: TelegramRates | None = None,
        sleep: Sleep = asyncio.sleep,
        coalesce_bursts: bool = True,
        recipients: RecipientCache | None = None,
    ) -> None:
        """`clock` returns aware UTC datetimes and `rng` floats in [0, 1) (backoff jitter); both
        are injectable so tests are deterministic. `lease` must exceed the slowest single send;
        a message of many parts extends its own lease. `on_deletion_scheduled(when)` hears of
        each delivered message whose Telegram copy must be deleted at `when`. `fallbacks` are
        the other channels this deployment set up; `public_url` builds email unsubscribe
        links. `rates` are the Telegram limits to pace to (default: Telegram's own;
        `TelegramRates.unlimited()` turns pacing off); `sleep` waits out a short pacing wait
        (injectable so tests can move a fake clock instead). `coalesce_bursts` folds a chat's
        queue into digests when it exceeds what pacing lets through soon (needs pacing).
        `recipients` (bound to `sessionmaker`; by default one of the worker's own): where
        each delivery finds the recipient's personal log (`Deliverer._log_of`). `concurrency`:
        chats served at once (by default CONCURRENCY, or PACED_CONCURRENCY when pacing)."""
        self._sessionmaker = sessionmaker
        self._clock = clock
        self._poll_interval = poll_interval
        self._batch_size = batch_size
        self._wake = asyncio.Event()
        self._running = False
        self._last_error: str | None = None
        self._last_run_at: datetime | None = None
        rates = TelegramRates() if rates is None else rates
        if concurrency is None:
            concurrency = chats_at_once(rates)
        self._slots = asyncio.Semaphore(concurrency)
        self._folds = asyncio.Semaphore(FOLDS_AT_ONCE)
        self.pacing: PacedSends | None = None
        if rates != TelegramRates.unlimited():
            patience = patience_for(concurrency, rates.global_per_second)
            self.pacing = PacedSends(Pacer(rates, clock().timestamp()), clock, sleep, patience)
        self._telegram = TelegramChannel(bot, request_timeout=request_timeout)
        if create_topic is None:
            # Bounded as a send is: the lease covers one topic creation of that length.
            create_topic = functools.partial(
                personal_log_create_topic, request_timeout=request_timeout
            )
        self._deliverer = Deliverer(
            sessionmaker,
            bot,
            self._telegram,
            cipher,
            create_topic,
            clock,
            rng,
            Policy(lease=lease, max_attempts=max_attempts),
            on_deletion_scheduled,
            Elsewhere(
                fallbacks or {},
                cipher,
                clock=clock,
                public_url=public_url,
                policies=policies,
            ),
            self.pacing,
            recipients,
        )
        self._cipher = cipher
        # Chats the pacer holds back, by recipient: their Telegram messages committed meanwhile
        # are postponed in one UPDATE instead of each being claimed only to be put back.
        self._paced: dict[int, datetime] = {}
        self._holds_recalled = False  # see _recall_holds
        self._coalescer = (
            coalesce.BurstCoalescer(sessionmaker, cipher, clock) if coalesce_bursts else None
        )
        self._erased_looked_at: datetime | None = None  # see _forget_erased_renders

    def notify(self) -> None:
        """A message was just committed: look at the outbox now rather than at the next poll."""
        self._wake.set()

    def forget_rendered(self) -> None:
        """A message was erased: no rendered text of it may stay (gateway.rendering.memo)."""
        self._telegram.forget_all_rendered()

    async def _recall_holds(self) -> None:
        """Learn, before the first pass, which chats an earlier worker held back (`_paced`
        lives in memory): a retry's wait, a pacer's postponement, an attempt whose outcome is
        unknown. Without this, after a restart a message committed meanwhile was due at once
        and went out before the older ones held (outbox.held_chats)."""
        async with self._sessionmaker() as session:
            held = await outbox.held_chats(session, self._clock())
        self._paced.update(held)  # the first thing a worker does: nothing is held yet
        self._holds_recalled = True

    async def _forget_erased_renders(self) -> None:
        """Forget the rendered text of messages erased or settled elsewhere: an erasure in
        a `serve --role api` process cannot reach this memo (`forget_rendered`) directly. A
        read by primary key of the few messages kept (gateway.rendering.memo keeps at most
        MAX_ENTRIES texts), none while nothing is kept, and at most one every
        ERASED_RENDERS_EVERY seconds (a flood's runs come every few milliseconds)."""
        kept = self._telegram.rendered_for()
        now = self._clock()
        if not kept or (
            self._erased_looked_at is not None
            and now - self._erased_looked_at < timedelta(seconds=ERASED_RENDERS_EVERY)
        ):
            return
        self._erased_looked_at = now
        async with self._sessionmaker() as session:
            gone = kept - await messages.with_content(session, kept)
        if gone:
            self._telegram.forget_rendered_for(gone)

    def state(self) -> WorkerState:
        return WorkerState(
            self._running,
            self._last_error,
            self._last_run_at,
            self._telegram.outcomes.unknown,
        )

    async def run_once(self) -> int:
        """Deliver what is due now; returns how many messages got an attempt (any outcome).

        A failure in one chat does not stop the others; the first one is raised at the end.
        """
        # Rendered text past its time goes now, not when the next long message is rendered.
        self._telegram.forget_expired_renders()
        results: list[int | BaseException] = []
        try:
            if not self._holds_recalled:
                await self._recall_holds()
            await self._forget_erased_renders()
            async with self._sessionmaker() as session:
                # Audit lines of deliveries elsewhere go to logs that are reachable again.
                if await audit.flush_ready(session, self._cipher, self._clock()):
                    await session.commit()
            # A pass takes the first `batch_size` due messages, oldest first. A flood into one
            # held group fills a pass with that chat's newest messages, which the pass only
            # puts back: another chat's message, due after them, would wait for the flood to
            # end. So while a whole pass was held chats' messages, put back now, the run looks
            # again (and stops should a pass find nothing new: messages it could not put back).
            previous: set[str] = set()
            for _ in range(MAX_HELD_PASSES):
                outcomes, candidates, held = await self._pass()
                results.extend(outcomes)
                ids = {c.message_id for c in candidates}
                failed = any(isinstance(o, BaseException) for o in outcomes)
                if failed or not held or ids <= previous or len(candidates) < self._batch_size:
                    break
                previous = ids
        except Exception as exc:
            self._failed(exc)
            raise
        self._last_run_at = self._clock()
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            self._failed(errors[0])
            raise errors[0]
        self._last_error = None
        return sum(r for r in results if isinstance(r, int))

    async def _pass(
        self,
    ) -> tuple[list[int | BaseException], list[outbox.Candidate], bool]:
        """One look for due work, and each chat's share of it run: (each chat's count of
        messages tried, or its error; the candidates; whether every one of them was a held
        chat's Telegram message, which the pass put back)."""
        async with self._sessionmaker() as session:
            candidates = await outbox.due(session, self._clock(), self._batch_size)
        now = self._clock()
        self._paced = {r: until for r, until in self._paced.items() if until > now}
        held = bool(candidates) and all(
            c.recipient_id in self._paced and c.channel is Channel.TELEGRAM for c in candidates
        )
        chats: dict[int, list[outbox.Candidate]] = {}
        for candidate in candidates:
            chats.setdefault(candidate.recipient_id, []).append(candidate)
        results = await asyncio.gather(
            *(self._run_chat(queue) for queue in chats.values()), return_exceptions=True
        )
        return results, candidates, held

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set, waking on `notify()`, at the next due time, or at the
        latest after `poll_interval` (which also catches messages committed by other processes)."""
        self._running = True
        log.info("delivery worker started")
        try:
            while not stop.is_set():
                self._wake.clear()  # a notify() during the run below triggers the next one
                try:
                    handled = await self.run_once()
                    if not handled:
                        # A run that tried nothing found nothing, or only held work back (a
                        # paced chat's new messages). Under a stream of those, a run per
                        # message is most of the gateway's work: the next run waits a moment,
                        # so they cost one run per moment.
                        # (A notify() does not cut this pause short.)
                        await waiting.pause(stop, HELD_RUN_SPACING)
                    # Woken meanwhile: new work is due, and asking the database when the next
                    # message is due would be wasted.
                    delay = 0.0 if self._wake.is_set() else await self._delay(handled)
                except Exception:  # recorded in state(); the worker must outlive it
                    delay = self._poll_interval
                await self._sleep(stop, delay)
        finally:
            self._running = False
            log.info("delivery worker stopped")

    async def _coalesce(self, queue: list[outbox.Candidate]) -> list[outbox.Candidate]:
        """Fold the chat's burst into digests when its queue exceeds the budget (see
        gateway.delivery.coalesce); the queue to send then."""
        pacing, coalescer = self.pacing, self._coalescer
        recipient = queue[0].recipient_id
        queued = sum(1 for c in queue if c.channel is Channel.TELEGRAM)
        if pacing is None or coalescer is None or queued < 2 or recipient in self._paced:
            # While the chat is held its messages wait anyway: they fold, all together and in
            # order, once it may send again.
            return queue

        def budget(chat_id: int, is_group: bool) -> float:
            now = self._clock().timestamp()
            return pacing.pacer.budget(chat_id, is_group, now, coalesce.HORIZON)

        try:
            async with self._folds:
                folded = await coalescer.fold(recipient, queued, budget)
        except Exception as exc:
            # Folding is an optimisation: the queue goes out unfolded rather than not at all.
            log.error("folding the burst of user %s failed: %s", recipient, type(exc).__name__)
            return queue
        return coalesce.requeue(queue, folded) if folded else queue

    async def _run_chat(self, queue: list[outbox.Candidate]) -> int:
        """One recipient's due messages, in order. Returns how many got an attempt."""
        async with self._slots:
            queue = await self._coalesce(queue)
            handled = 0
            # The pacer holds this chat's Telegram sends until then (known from an earlier run).
            paced_until = self._paced.get(queue[0].recipient_id)

            def held_back(candidate: outbox.Candidate) -> bool:
                return paced_until is not None and candidate.channel is Channel.TELEGRAM

            # The rest is claimed in one statement, not one per message; past the chat's share
            # of the pass, the next pass takes it (skipped below as not claimed).
            sendable = [c.message_id for c in queue if not held_back(c)]
            claimed = await self._deliverer.claim(sendable[:CHAT_SHARE])
            held: list[str] = []
            trying: str | None = None  # the message whose attempt is under way
            try:
                for candidate in queue:
                    if held_back(candidate):
                        held.append(candidate.message_id)
                        continue
                    taken = claimed.pop(candidate.message_id, None)
                    if taken is None:
                        continue  # another worker has it
                    # Only a Telegram message's order binds the chat's other Telegram ones.
                    trying = candidate.message_id if candidate.channel is Channel.TELEGRAM else None
                    result = await self._deliverer.deliver_claimed(taken)
                    trying = None
                    if result is None:
                        continue  # another worker took it over
                    if result.paced:
                        # Only its Telegram messages wait for the chat's buckets; other
                        # channels are not paced by them.
                        paced_until = result.retry_at
                        if paced_until is not None:
                            self._paced[candidate.recipient_id] = paced_until
                        continue
                    handled += 1
                    if result.retry_at is not None:
                        # The chat is rate limited or failing (a Telegram retry): hold its later
                        # Telegram messages back too, so they keep their order and we do not
                        # keep hitting it; also those committed before the retry (the next
                        # runs postpone them). Its other channels' messages go on.
                        paced_until = result.retry_at
                        self._paced[candidate.recipient_id] = paced_until
                if held and paced_until is not None:
                    await self._postpone(held, paced_until, claimed)
            finally:
                if claimed or trying is not None:
                    # Left by an error or a cancellation: queued again now, not when the lease
                    # runs out (meanwhile they could be neither erased nor sent).
                    await self._hand_back(claimed, queue[0].recipient_id, trying)
            return handled

    async def _postpone(
        self, message_ids: list[str], until: datetime, claimed: dict[str, Claimed]
    ) -> None:
        """Hold these messages back until `until` (outbox.postpone); those this run claimed
        and did not try are handed back (and leave `claimed`)."""
        taken = [m for m in message_ids if m in claimed]
        if message_ids:
            async with self._sessionmaker() as session:
                await outbox.postpone(session, message_ids, until, self._clock())
                if taken:
                    await outbox.release(session, taken, claimed[taken[0]].token, until)
                await session.commit()
        for message_id in taken:
            del claimed[message_id]

    async def _hand_back(
        self, claimed: dict[str, Claimed], recipient_id: int, trying: str | None
    ) -> None:
        """Queue again what the run claimed and did not try, in its place. If the error came
        from an attempt at a Telegram message (`trying`), that message stays leased until its
        lease runs out (its outcome is unknown): the chat's other Telegram messages, these and
        any committed meanwhile, wait until then too, so that none overtakes it."""
        try:
            await asyncio.shield(self._give_back(claimed, recipient_id, trying))
        except Exception as exc:  # the lease still runs out; the original error matters more
            log.error("handing back claimed messages failed: %s", type(exc).__name__)

    async def _give_back(
        self, claimed: dict[str, Claimed], recipient_id: int, trying: str | None
    ) -> None:
        telegram = [m for m, c in claimed.items() if current_channel(c.message) is Channel.TELEGRAM]
        others = [m for m in claimed if m not in telegram]
        async with self._sessionmaker() as session:
            until = await outbox.lease_of(session, trying) if trying is not None else None
            if until is not None:
                # Also those the chat commits meanwhile, which no run claimed yet.
                self._paced[recipient_id] = max(until, self._paced.get(recipient_id, until))
            if claimed:
                token = next(iter(claimed.values())).token  # claimed together, in one statement
                await outbox.release(session, telegram, token, until)
                await outbox.release(session, others, token, None)
                await session.commit()
        claimed.clear()

    async def _delay(self, handled: int) -> float:
        async with self._sessionmaker() as session:
            wakeup = await outbox.next_wakeup(session)
        if wakeup is None:
            return self._poll_interval
        delay = (wakeup - self._clock()).total_seconds()
        if delay <= 0 and handled == 0:
            # Due but nothing could be taken (another worker holds it): do not spin.
            return self._poll_interval
        return min(max(delay, 0.0), self._poll_interval)

    async def _sleep(self, stop: asyncio.Event, delay: float) -> None:
        await waiting.first_set(self._wake, stop, within=delay)

    def _failed(self, exc: BaseException) -> None:
        self._last_error = type(exc).__name__
        # Class only: exception texts can quote SQL parameters or Telegram descriptions.
        log.error("delivery run failed: %s", type(exc).__name__)
