"""One delivery attempt of one message: claim, open, route, send, record the outcome.

Every write after the claim is conditional on this worker's claim token (`claimed_until`), so
if the lease ran out and another worker took the message over, our late outcome is dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from aiogram import Bot
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.channels.base import (
    AddressGone,
    ChannelError,
    DestinationGone,
    OutcomeUnknown,
    RateLimited,
    Transient,
)
from gateway.channels.telegram import TelegramChannel, refuses_content
from gateway.content_cipher import ContentCipher, ContentDecryptError
from gateway.delivery import progress
from gateway.delivery.chain import DEFAULT_POLICIES, MoveOn, RetryPolicy, after_temporary_failure
from gateway.delivery.claim import Claim, Claimed, Handled, Policy, SentSoFar, current_channel
from gateway.delivery.delivered_commit import DeliveredCommits, Delivery
from gateway.delivery.elsewhere import Elsewhere
from gateway.delivery.routes import CreateTopic, Route, recreate, resolve
from gateway.ephemeral import deletion_due
from gateway.outbox_payload import OutboxPayload
from gateway.recipient_cache import RecipientCache
from storage.enums import AttemptOutcome, Channel, MessageStatus
from storage.models import LogGroup, Message
from storage.repositories import copies, outbox
from storage.repositories.groups import LogView

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

REASON_NO_LOG = "no personal log linked"
REASON_REMOVED = "bot was removed from the personal log group"
REASON_CHAT_GONE = "the personal log group no longer exists"
REASON_UNREADABLE = "stored content does not decrypt with the configured key"
REASON_UNRENDERABLE = "content could not be rendered for Telegram"
# Added to a digest's failure reason when its members were given back to go one by one.
UNFOLDED = " (its messages were sent one by one)"
# Content up to this many characters is rendered on the event loop (one Telegram message's
# worth: quicker than a hand-over to a thread); longer content on a thread.
RENDER_HERE_UP_TO = 4096


class SendPacing(Protocol):
    """Telegram's limits, as the Deliverer sees them (the worker's pacer behind it)."""

    async def before_send(self, chat_id: int) -> datetime | None:
        """Called before each part: None once the part may go (after a short wait, if any);
        else the time until which the message (and its chat) should be held back."""
        ...

    def rate_limited(self, chat_id: int, retry_after: float) -> None:
        """Telegram answered a send to `chat_id` with 429."""
        ...


class Deliverer:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        bot: Bot,
        channel: TelegramChannel,
        cipher: ContentCipher,
        create_topic: CreateTopic,
        clock: Clock,
        rng: Callable[[], float],
        policy: Policy,
        on_deletion_scheduled: Callable[[datetime], None],
        elsewhere: Elsewhere,
        pacing: SendPacing | None = None,
        recipients: RecipientCache | None = None,
    ) -> None:
        """`recipients`: the process's cache of recipient state, bound to `sessionmaker` (by
        default one of this deliverer's own); the personal log a message goes to is taken from
        it (see `_log_of`)."""
        self._recipients = RecipientCache.of(sessionmaker, recipients)
        self._pacing = pacing
        self._on_deletion_scheduled = on_deletion_scheduled
        self._sessionmaker = sessionmaker
        self._bot = bot
        self._channel = channel
        self._cipher = cipher
        self._create_topic = create_topic
        self._clock = clock
        self._rng = rng
        self._policy = policy
        self._telegram_policy = RetryPolicy(
            max_attempts=policy.max_attempts,
            base=DEFAULT_POLICIES[Channel.TELEGRAM].base,
            cap=DEFAULT_POLICIES[Channel.TELEGRAM].cap,
        )
        self._elsewhere = elsewhere
        self.delivered_commits = DeliveredCommits(sessionmaker, clock)

    async def claim(self, message_ids: Sequence[str]) -> dict[str, Claimed]:
        """Take these messages for this worker, in one statement, with the numbers their
        attempts get. Those another worker holds (or that are no longer due) are left out."""
        if not message_ids:
            return {}
        async with self._sessionmaker() as session:
            now = self._clock()
            token = now + self._policy.lease
            messages = await outbox.claim_many(session, message_ids, now, token)
            if not messages:
                await session.rollback()
                return {}
            # Read in the claim's transaction: a read after its commit was a transaction (and a
            # pooled connection's checkout) of its own, for each chat's run.
            numbers = await outbox.next_attempt_numbers(
                session, [(m.id, current_channel(m)) for m in messages.values()]
            )
            # Committed before Telegram is called: a crash from here on leaves leases that
            # simply run out, and another worker picks the messages up.
            await session.commit()
        return {
            message_id: Claimed(message, token, numbers[message_id])
            for message_id, message in messages.items()
        }

    async def deliver_claimed(self, claimed: Claimed) -> Handled | None:
        """Try a message `claim` took, once; None if another worker took it over meanwhile."""
        message = claimed.message
        async with self._sessionmaker() as session:
            # The message stays detached (loaded by the claim's session, which is closed): the
            # attempt writes it with Core statements only, and adding it to this session cost
            # the ORM's cascade walk twice a message (a twentieth of the delivering process).
            channel = current_channel(message)
            claim = Claim(session, message, claimed.token, claimed.attempt, channel)
            try:
                # Claimed with the rest of its chat's queue, perhaps a while ago: a full lease
                # again before anything is sent on any channel, so that the lease cannot run
                # out (and another worker, or an erasure, take the message) mid-send.
                now = self._clock()
                lease = self._policy.lease
                if claim.token < now + lease / 2 and not await self._extend(claim, now + lease):
                    return None
                return await self._attempt(claim)
            except Exception as exc:
                # A bug or an unforeseen error must not retry forever at every lease expiry:
                # it counts as a transient failure, so the retry bound applies.
                log.error(
                    "message %s: unexpected %s while delivering", message.id, type(exc).__name__
                )
                unexpected = Transient(type(exc).__name__, "unexpected error while delivering")
                sent = claim.sent
                if sent is not None and len(sent.parts) > sent.new_from:
                    # Telegram has parts of it already: recorded with their copies, as the
                    # attempt would have, so that a retry does not send them again and they
                    # stay deletable (the outcome's commit refused once, say).
                    try:
                        if not await self._start_over(claim):
                            return None
                        return await self._record_sent(claim, sent, unexpected)
                    except Exception as again:
                        log.error(
                            "message %s: its sent parts could not be recorded (%s); "
                            "a retry will send them again",
                            message.id,
                            type(again).__name__,
                        )
                if not await self._start_over(claim):
                    return None
                return await self._failed_send(claim, None, unexpected, [])

    async def _start_over(self, claim: Claim) -> bool:
        """After an unexpected error: the transaction rolled back, the message as it stands
        now (the error may have come after one of the attempt's commits). False if the row is
        gone (erased meanwhile)."""
        message_id = claim.message.id  # read before a rollback expires the object
        await claim.session.rollback()
        claim.drop_rows()  # rolled back with the rest
        current = await claim.session.get(Message, message_id, populate_existing=True)
        if current is None:
            return False
        claim.message = current
        return True

    async def _record_sent(
        self, claim: Claim, sent: SentSoFar, unexpected: Transient
    ) -> Handled | None:
        self._keep_copies(claim, sent)
        parts = list(sent.parts)
        if sent.complete:
            return await self._delivered(claim, sent.route, parts, sent.payload)
        return await self._failed_send(claim, None, unexpected, parts, sent.route, sent.sealed)

    async def _attempt(self, claim: Claim) -> Handled | None:
        message = claim.message
        try:
            if message.encrypted_content is None:
                raise ContentDecryptError("no content")
            sealed = self._cipher.open(message.id, message.encrypted_content)
            payload = OutboxPayload.from_dict(sealed)
        except (ContentDecryptError, KeyError, TypeError, ValueError) as exc:
            return await self._fail(claim, type(exc).__name__, REASON_UNREADABLE)
        if claim.channel is not Channel.TELEGRAM:
            return await self._elsewhere.attempt(self, claim, payload)
        group = await self._log_of(claim)
        if group is None:
            return await self.give_up(claim, "NoPersonalLog", REASON_NO_LOG)
        try:
            parts = await self._render(payload, message)
        except (TypeError, ValueError) as exc:
            error_class = type(exc).__name__
            # A digest that no longer renders (its members may, each alone); not once a part
            # of it went out, or those members would arrive twice.
            if not progress.any_sent(sealed) and await self._unfold(claim, error_class):
                return await self._fail(claim, error_class, REASON_UNRENDERABLE + UNFOLDED)
            return await self._fail(claim, error_class, REASON_UNRENDERABLE)
        if not await self._cover(claim, len(parts)):
            return None
        handled = await self._send(claim, group, sealed, payload, parts)
        if handled is not None and handled.retry_at is None and not handled.paced:
            # Sent, failed for good or moved on to another channel: its rendered text need not
            # stay in memory (a retry here, or a hold, renders it again from the memo).
            self._channel.forget_rendered(payload, message.category)
        return handled

    async def _log_of(self, claim: Claim) -> LogView | None:
        """The recipient's linked personal log, from the recipient cache: a write to a
        person's group or topics through this sessionmaker (the bot's /setup, a move to
        another group, an unlink, /erase, a topic the worker creates) drops their snapshot
        when it commits, so a hit is what a read would return. Only the bot, in the
        process that delivers, writes those rows. A hit spares each delivery its read, and its
        session a connection: a sixth of the delivering process's CPU a message, measured."""
        return (await self._recipients.load(claim.message.recipient_id)).log_view

    async def _render(self, payload: OutboxPayload, message: Message) -> list[str]:
        """The parts to send. A long text (a digest: up to 64 KiB) takes tens of milliseconds
        to render and split: that is done on a thread, so that the event loop goes on
        answering meanwhile (it takes the GIL back every few milliseconds). A short one is
        rendered sooner here than handed over."""
        if payload.size() <= RENDER_HERE_UP_TO:
            return self._channel.render(payload, message.category, message.id)
        return await asyncio.to_thread(self._channel.render, payload, message.category, message.id)

    async def _send(
        self,
        claim: Claim,
        group: LogView,
        sealed: dict[str, Any],
        payload: OutboxPayload,
        parts: list[str],
    ) -> Handled | None:
        message = claim.message
        route: Route | None = None
        sent: list[str] = []
        recreated = False
        while True:
            sending = False  # a part is with Telegram (an error now is the send's, not the route's)
            try:
                if route is None:
                    route = await resolve(
                        claim.session,
                        self._bot,
                        self._create_topic,
                        group,
                        message.category,
                        payload.thread_id,
                    )
                sent = progress.sent_parts(sealed, route.address)
                already = len(sent)
                claim.sent = None  # a recreated topic: what went to the old one went with it
                for index in range(len(sent), len(parts)):
                    if self._pacing is not None:
                        hold = await self._pacing.before_send(route.address.chat_id)
                        if hold is not None:
                            return await self._held_back(claim, route, sealed, sent, hold)
                    last = index == len(parts) - 1
                    sending = True
                    sent.append(
                        await self._channel.send(route.address, parts[index], payload, last=last)
                    )
                    sending = False
                    self._keep_copy(claim, route, sent, payload)
                    claim.sent = SentSoFar(route, sealed, payload, tuple(sent), len(parts), already)
                return await self._delivered(claim, route, sent, payload)
            except AddressGone as err:
                if recreated or route is None:
                    reason = "message thread not found even after recreating the topic"
                    return await self.give_up(claim, err.error_class, reason, err, sent)
                # Once per attempt: the topic was deleted in Telegram. Record the failed try,
                # build the topic anew and send again at once (its old messages went with it).
                self._record(claim, AttemptOutcome.RETRY, err, sent)
                log.warning(
                    "message %s: thread %s of chat %s not found; recreating the topic",
                    message.id,
                    route.address.message_thread_id,
                    route.address.chat_id,
                )
                claim.attempt += 1
                recreated = True
                try:
                    route = await recreate(
                        claim.session, self._bot, self._create_topic, group, route
                    )
                except ChannelError as create_err:
                    return await self._failed_send(claim, group, create_err, sent)
                if not await self._cover(claim, len(parts)):
                    return None
            except ChannelError as err:
                # A digest whose first part Telegram refused for its content: its members go
                # one by one, and the one at fault fails alone.
                none_sent = not sent and not progress.any_sent(sealed)
                refused = sending and none_sent and refuses_content(err)
                if refused and await self._unfold(claim, err.error_class, err.detail):
                    return await self._fail(claim, err.error_class, err.detail + UNFOLDED, err)
                return await self._failed_send(claim, group, err, sent, route, sealed)

    async def _failed_send(
        self,
        claim: Claim,
        group: LogView | None,
        err: ChannelError,
        sent: list[str],
        route: Route | None = None,
        sealed: dict[str, Any] | None = None,
    ) -> Handled | None:
        now = self._clock()
        message = claim.message
        extra: dict[str, Any] = {}
        if route is not None and sealed is not None and sent:
            extra["encrypted_content"] = self._cipher.seal(
                message.id, progress.with_sent_parts(sealed, route.address, sent)
            )
        if isinstance(err, RateLimited):
            if self._pacing is not None and group is not None:
                chat_id = route.address.chat_id if route is not None else group.chat_id
                self._pacing.rate_limited(chat_id, err.retry_after)
            # Telegram pacing us is not the message's fault: it does not count toward the bound.
            retry_at = now + timedelta(seconds=err.retry_after)
            return await self._retry(claim, err, sent, retry_at, counted=False, **extra)
        if isinstance(err, OutcomeUnknown):
            # Counted and logged (chat, no id) by the channel; this line names the message.
            log.warning(
                "message %s: outcome of attempt %d unknown; a retry may deliver it twice",
                message.id,
                claim.attempt,
            )
        if isinstance(err, Transient):
            return await self.after_transient(claim, err, self._telegram_policy, sent, **extra)
        if isinstance(err, DestinationGone) and group is not None:
            row = await claim.session.get(LogGroup, group.id)
            if row is not None:  # written with the outcome
                row.unlinked_at = now
            log.warning("chat %s gone (%s); personal log unlinked", group.chat_id, err.error_class)
            reason = REASON_CHAT_GONE if err.detail == "chat not found" else REASON_REMOVED
            return await self.give_up(claim, err.error_class, reason, err, sent)
        return await self.give_up(claim, err.error_class, err.detail, err, sent)

    async def _held_back(
        self,
        claim: Claim,
        route: Route,
        sealed: dict[str, Any],
        sent: list[str],
        until: datetime,
    ) -> Handled | None:
        """The pacer says this chat must wait: back to the queue until `until`, keeping the
        parts sent so far. Not an attempt (nothing was tried), so none is recorded or counted."""
        extra: dict[str, Any] = {}
        if sent:
            extra["encrypted_content"] = self._cipher.seal(
                claim.message.id, progress.with_sent_parts(sealed, route.address, sent)
            )
        done = await self._settle(
            claim,
            status=MessageStatus.QUEUED,
            next_attempt_at=until,
            claimed_until=None,
            **extra,
        )
        if not done:
            return None
        log.debug("message %s: paced until %s", claim.message.id, until.isoformat())
        return Handled(AttemptOutcome.RETRY, until, paced=True)

    async def after_transient(
        self,
        claim: Claim,
        err: ChannelError,
        policy: RetryPolicy,
        sent: list[str] | None = None,
        *,
        retry_after: float | None = None,
        **extra: Any,
    ) -> Handled | None:
        """Retry on this channel when its policy says so, else move on down the chain."""
        now = self._clock()
        decision = after_temporary_failure(
            failures=claim.message.attempt_count + 1,
            since=claim.message.channel_since or now,
            now=now,
            has_next=claim.has_next,
            policy=policy,
            rng=self._rng,
            retry_after=retry_after,
        )
        if isinstance(decision, MoveOn):
            reason = f"{decision.reason}: {err.error_class}: {err.detail}"
            return await self.give_up(claim, err.error_class, reason, err, sent)
        return await self._retry(claim, err, sent or [], decision.at, counted=True, **extra)

    async def _cover(self, claim: Claim, parts: int) -> bool:
        """Make the lease last for every part (plus a topic creation) of the slowest sends."""
        worst = timedelta(seconds=(parts + 1) * self._channel.request_timeout)
        needed = self._clock() + worst
        return needed <= claim.token or await self._extend(claim, needed)

    async def _extend(self, claim: Claim, needed: datetime) -> bool:
        """Move the claim's lease to `needed`; False (rolled back) if the claim was lost."""
        await self._write_rows(claim)  # a try recorded before a topic was recreated, say
        message_id = claim.message.id  # read before a rollback expires the object
        if not await outbox.extend_claim(claim.session, message_id, claim.token, needed):
            await claim.session.rollback()
            log.warning("message %s: claim lost before sending", message_id)
            return False
        await claim.session.commit()
        claim.token = needed
        return True

    def _record(
        self,
        claim: Claim,
        outcome: AttemptOutcome,
        err: ChannelError | None,
        sent: list[str],
    ) -> None:
        claim.attempt_rows.append(
            outbox.attempt_row(
                claim.message.id,
                claim.channel,
                claim.attempt,
                outcome,
                self._clock(),
                external_id=progress.external_id(sent),
                error=f"{err.error_class}: {err.detail}" if err else None,
            )
        )

    async def _write_rows(self, claim: Claim) -> None:
        """The attempt and copy rows recorded so far, into the claim's transaction."""
        await outbox.add_attempts(claim.session, claim.attempt_rows)
        await copies.insert_rows(claim.session, claim.copy_rows)
        claim.drop_rows()

    async def _settle(self, claim: Claim, **values: Any) -> bool:
        await self._write_rows(claim)
        message_id = claim.message.id  # read before a rollback expires the object
        held = await outbox.settle(claim.session, message_id, claim.token, **values)
        if not held:
            # Our lease ran out and another worker owns the message now; its outcome wins.
            await claim.session.rollback()
            log.warning("message %s: claim lost; outcome dropped", message_id)
            return False
        await claim.session.commit()
        return True

    async def _settle_members(
        self, claim: Claim, outcome: AttemptOutcome, *, error: str | None = None, **values: Any
    ) -> None:
        """Settle the messages the claimed one carries (a digest's), in the same session."""
        if claim.carries_none:
            return
        await outbox.settle_carried(
            claim.session,
            claim.message.id,
            outcome,
            self._clock(),
            channel=claim.channel,
            error=error,
            **values,
        )

    async def _settle_delivered(self, claim: Claim, external_id: str | None, now: datetime) -> bool:
        """Mark the message delivered by its current channel, and the messages it carries (a
        digest's, also one that fell back to another channel) with it, pointing to where it
        landed. The content is wiped in the same commit. False: the claim was lost."""
        session = claim.session
        if (
            claim.channel is Channel.TELEGRAM
            and claim.carries_none
            and not (session.new or session.dirty or session.deleted)
        ):
            return await self._settle_sent(claim)
        await self._settle_members(
            claim,
            AttemptOutcome.DELIVERED,
            external_id=external_id,
            status=MessageStatus.DELIVERED,
            delivered_at=now,
            delivered_via=claim.channel,
            failure_reason=None,
            encrypted_content=None,
        )
        return await self._settle(
            claim,
            status=MessageStatus.DELIVERED,
            delivered_at=now,
            delivered_via=claim.channel,
            encrypted_content=None,
            claimed_until=None,
            failure_reason=None,
            attempt_count=claim.message.attempt_count + 1,
        )

    async def _settle_sent(self, claim: Claim) -> bool:
        """`_settle_delivered` of a message sent by Telegram that carries no others, in a
        transaction it shares with the deliveries finishing with it (`DeliveredCommits`).
        Everything else the attempt wrote (a lease extended, a topic created) is committed
        by now, and no ORM change is pending (the caller checks): the claim's session only
        read since, and lets its connection (and SQLite's write gate) go meanwhile."""
        delivery = Delivery(
            claim.message.id, claim.token, list(claim.attempt_rows), list(claim.copy_rows)
        )
        claim.drop_rows()
        await claim.session.close()
        held = await self.delivered_commits.settle(delivery)
        if not held:
            log.warning("message %s: claim lost; outcome dropped", delivery.message_id)
        return held

    async def _delivered(
        self, claim: Claim, route: Route, sent: list[str], payload: OutboxPayload
    ) -> Handled | None:
        now = self._clock()
        self._record(claim, AttemptOutcome.DELIVERED, None, sent)
        delete_at = deletion_due(
            now, self_destruct_seconds=payload.self_destruct_seconds, ephemeral=payload.ephemeral
        )
        if not await self._settle_delivered(claim, progress.external_id(sent), now):
            return None
        if delete_at is not None:
            self._on_deletion_scheduled(delete_at)
        log.info(
            "message %s delivered to chat %s thread %s in %d part(s)",
            claim.message.id,
            route.address.chat_id,
            route.address.message_thread_id,
            len(sent),
        )
        return Handled(AttemptOutcome.DELIVERED)

    async def _retry(
        self,
        claim: Claim,
        err: ChannelError,
        sent: list[str],
        retry_at: datetime,
        *,
        counted: bool,
        **extra: Any,
    ) -> Handled | None:
        self._record(claim, AttemptOutcome.RETRY, err, sent)
        done = await self._settle(
            claim,
            status=MessageStatus.QUEUED,
            next_attempt_at=retry_at,
            claimed_until=None,
            attempt_count=claim.message.attempt_count + (1 if counted else 0),
            channel_since=claim.message.channel_since or self._clock(),
            **extra,
        )
        if not done:
            return None
        log.warning(
            "message %s: attempt %d failed with %s; retry at %s",
            claim.message.id,
            claim.attempt,
            err.error_class,
            retry_at.isoformat(),
        )
        # Telegram pacing concerns the whole chat: its later messages wait too. A retry on
        # another channel holds back nothing else.
        return Handled(
            AttemptOutcome.RETRY, retry_at if claim.channel is Channel.TELEGRAM else None
        )

    def _keep_copy(
        self, claim: Claim, route: Route, sent: list[str], payload: OutboxPayload
    ) -> None:
        """Record the part just sent, in the session the attempt's outcome commits: kept while
        the bot may delete it (self-destruct, the ephemeral button, DELETE, /erase), with its
        own send time, also when a later part fails. A due deletion lives in the same row, so
        it survives any restart."""
        now = self._clock()
        claim.copy_rows += copies.rows(
            user_id=claim.message.recipient_id,
            message_id=claim.message.id,
            chat_id=route.address.chat_id,
            telegram_ids=[int(sent[-1])],
            first_part_id=int(sent[0]),
            sent_at=now,
            delete_at=deletion_due(
                now,
                self_destruct_seconds=payload.self_destruct_seconds,
                ephemeral=payload.ephemeral,
            ),
        )

    def _keep_copies(self, claim: Claim, sent: SentSoFar) -> None:
        """`_keep_copy` of each part this attempt sent, afresh (the rows went with a rollback),
        as sent now: a later time than the send's only moves a deletion later, and makes an
        /erase under way refuse rather than miss it."""
        for index in range(sent.new_from, len(sent.parts)):
            self._keep_copy(claim, sent.route, list(sent.parts[: index + 1]), sent.payload)

    async def delivered_elsewhere(self, claim: Claim, external_id: str) -> Handled | None:
        """Settle a delivery by a channel other than Telegram (no parts, no copies)."""
        self._record(claim, AttemptOutcome.DELIVERED, None, [external_id])
        if not await self._settle_delivered(claim, external_id, self._clock()):
            return None
        log.info("message %s delivered by %s", claim.message.id, claim.channel.value)
        return Handled(AttemptOutcome.DELIVERED)

    async def give_up(
        self,
        claim: Claim,
        error_class: str,
        reason: str,
        err: ChannelError | None = None,
        sent: list[str] | None = None,
    ) -> Handled | None:
        """This channel will not deliver the message: the next one in its chain will try, or,
        if it was the last, the message failed."""
        if not claim.has_next:
            return await self._fail(claim, error_class, reason, err, sent)
        cause = err or ChannelError(error_class, reason)
        self._record(claim, AttemptOutcome.FAILED, cause, sent or [])
        nxt = claim.message.channels[claim.message.channel_index + 1]
        done = await self._settle(
            claim,
            status=MessageStatus.QUEUED,
            channel_index=claim.message.channel_index + 1,
            channel_since=None,
            attempt_count=0,
            next_attempt_at=self._clock(),
            claimed_until=None,
            failure_reason=reason[:200],
        )
        if not done:
            return None
        log.warning(
            "message %s: %s gave up (%s); falling back to %s",
            claim.message.id,
            claim.channel.value,
            error_class,
            nxt,
        )
        return Handled(AttemptOutcome.FAILED)

    async def _unfold(self, claim: Claim, error_class: str, detail: str = "") -> int:
        """If the claimed message is a digest, give its members back to the queue to go one
        by one (`outbox.unfold`) and return how many; else 0. For a digest refused for its
        own content only: any other failure would fail each of them alone just the same."""
        message = claim.message
        if claim.carries_none or claim.channel is not Channel.TELEGRAM:
            return 0
        cause = f"{error_class}: {detail}" if detail else error_class
        back = await outbox.unfold(
            claim.session,
            message.id,
            self._clock(),
            error=f"the digest carrying it was refused ({cause})",
            reason=f"its digest was refused ({error_class}); sent on its own",
        )
        if back:
            log.warning(
                "digest %s refused (%s); its %d message(s) go one by one",
                message.id,
                error_class,
                back,
            )
        return back

    async def _fail(
        self,
        claim: Claim,
        error_class: str,
        reason: str,
        err: ChannelError | None = None,
        sent: list[str] | None = None,
    ) -> Handled | None:
        cause = err or ChannelError(error_class, reason)
        self._record(claim, AttemptOutcome.FAILED, cause, sent or [])
        await self._settle_members(
            claim,
            AttemptOutcome.FAILED,
            error=f"{cause.error_class}: {cause.detail}",
            status=MessageStatus.FAILED,
            failure_reason=reason[:200],
            encrypted_content=None,
        )
        # Nothing will deliver this content any more, so it is not kept either.
        done = await self._settle(
            claim,
            status=MessageStatus.FAILED,
            failure_reason=reason[:200],
            encrypted_content=None,
            claimed_until=None,
            attempt_count=claim.message.attempt_count + 1,
        )
        if not done:
            return None
        log.warning("message %s failed: %s", claim.message.id, error_class)
        return Handled(AttemptOutcome.FAILED)
