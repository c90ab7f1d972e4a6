"""One delivery attempt of one message: claim, open, route, send, record the outcome.

Every write after the claim is conditional on this worker's claim token (`claimed_until`), so
if the lease ran out and another worker took the message over, our late outcome is dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aiogram import Bot
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.channels.base import (
    AddressGone,
    ChannelAdapter,
    ChannelError,
    DestinationGone,
    RateLimited,
    Transient,
)
from gateway.channels.telegram import TelegramAddress
from gateway.content_cipher import ContentCipher, ContentDecryptError
from gateway.delivery import progress
from gateway.delivery.backoff import backoff_delay
from gateway.delivery.routes import CreateTopic, Route, recreate, resolve
from gateway.ephemeral import deletion_due
from gateway.outbox_payload import OutboxPayload
from storage.enums import AttemptOutcome, Channel, MessageStatus
from storage.models import LogGroup, Message
from storage.repositories import copies, groups, outbox

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

REASON_NO_LOG = "no personal log linked"
REASON_REMOVED = "bot was removed from the personal log group"
REASON_CHAT_GONE = "the personal log group no longer exists"
REASON_UNREADABLE = "stored content does not decrypt with the configured key"
REASON_UNRENDERABLE = "content could not be rendered for Telegram"


@dataclass(frozen=True)
class Handled:
    outcome: AttemptOutcome
    # Set for a retry: the earliest time anything more should be sent to this recipient.
    retry_at: datetime | None = None


@dataclass(frozen=True)
class Policy:
    lease: timedelta
    max_attempts: int


@dataclass
class _Claim:
    session: AsyncSession
    message: Message
    token: datetime  # the claimed_until we set: proof we still own the row
    attempt: int  # the DeliveryAttempt number of the current try


class Deliverer:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        bot: Bot,
        channel: ChannelAdapter[TelegramAddress],
        cipher: ContentCipher,
        create_topic: CreateTopic,
        clock: Clock,
        rng: Callable[[], float],
        policy: Policy,
        on_deletion_scheduled: Callable[[datetime], None],
    ) -> None:
        self._on_deletion_scheduled = on_deletion_scheduled
        self._sessionmaker = sessionmaker
        self._bot = bot
        self._channel = channel
        self._cipher = cipher
        self._create_topic = create_topic
        self._clock = clock
        self._rng = rng
        self._policy = policy

    async def deliver(self, message_id: str) -> Handled | None:
        """Try the message once; None if another worker holds it (or took it over from us)."""
        async with self._sessionmaker() as session:
            now = self._clock()
            token = now + self._policy.lease
            if not await outbox.claim(session, message_id, now, token):
                await session.rollback()
                return None
            # Committed before Telegram is called: a crash from here on leaves a lease that
            # simply runs out, and another worker picks the message up.
            await session.commit()
            message = await session.get(Message, message_id, populate_existing=True)
            if message is None:  # erased between claim and read
                return None
            attempt = await outbox.next_attempt_number(session, message_id, Channel.TELEGRAM)
            claim = _Claim(session, message, token, attempt)
            try:
                return await self._attempt(claim)
            except Exception as exc:
                # A bug or an unforeseen error must not retry forever at every lease expiry:
                # it counts as a transient failure, so the retry bound applies.
                await session.rollback()
                await session.refresh(message)  # the rollback expired it
                log.error(
                    "message %s: unexpected %s while delivering", message_id, type(exc).__name__
                )
                unexpected = Transient(type(exc).__name__, "unexpected error while delivering")
                return await self._failed_send(claim, None, unexpected, [])

    async def _attempt(self, claim: _Claim) -> Handled | None:
        message = claim.message
        try:
            if message.encrypted_content is None:
                raise ContentDecryptError("no content")
            sealed = self._cipher.open(message.id, message.encrypted_content)
            payload = OutboxPayload.from_dict(sealed)
        except (ContentDecryptError, KeyError, TypeError, ValueError) as exc:
            return await self._fail(claim, type(exc).__name__, REASON_UNREADABLE)
        group = await groups.linked_group_of(claim.session, message.recipient_id)
        if group is None:
            return await self._fail(claim, "NoPersonalLog", REASON_NO_LOG)
        try:
            parts = self._channel.render(payload, message.category)
        except (TypeError, ValueError) as exc:
            return await self._fail(claim, type(exc).__name__, REASON_UNRENDERABLE)
        if not await self._cover(claim, len(parts)):
            return None
        return await self._send(claim, group, sealed, payload, parts)

    async def _send(
        self,
        claim: _Claim,
        group: LogGroup,
        sealed: dict[str, Any],
        payload: OutboxPayload,
        parts: list[str],
    ) -> Handled | None:
        message = claim.message
        route: Route | None = None
        sent: list[str] = []
        recreated = False
        while True:
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
                for index in range(len(sent), len(parts)):
                    last = index == len(parts) - 1
                    sent.append(
                        await self._channel.send(route.address, parts[index], payload, last=last)
                    )
                return await self._delivered(claim, route, sent, payload)
            except AddressGone as err:
                if recreated or route is None:
                    reason = "message thread not found even after recreating the topic"
                    return await self._fail(claim, err.error_class, reason, err, sent)
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
                return await self._failed_send(claim, group, err, sent, route, sealed)

    async def _failed_send(
        self,
        claim: _Claim,
        group: LogGroup | None,
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
            # Telegram pacing us is not the message's fault: it does not count toward the bound.
            retry_at = now + timedelta(seconds=err.retry_after)
            return await self._retry(claim, err, sent, retry_at, counted=False, **extra)
        if isinstance(err, Transient):
            failures = message.attempt_count + 1
            if failures >= self._policy.max_attempts:
                reason = f"gave up after {failures} attempts: {err.error_class}: {err.detail}"
                return await self._fail(claim, err.error_class, reason, err, sent)
            delay = backoff_delay(failures, self._rng)
            retry_at = now + timedelta(seconds=delay)
            return await self._retry(claim, err, sent, retry_at, counted=True, **extra)
        if isinstance(err, DestinationGone) and group is not None:
            group.unlinked_at = now
            log.warning("chat %s gone (%s); personal log unlinked", group.chat_id, err.error_class)
            reason = REASON_CHAT_GONE if err.detail == "chat not found" else REASON_REMOVED
            return await self._fail(claim, err.error_class, reason, err, sent)
        return await self._fail(claim, err.error_class, err.detail, err, sent)

    async def _cover(self, claim: _Claim, parts: int) -> bool:
        """Make the lease last for every part (plus a topic creation) of the slowest sends."""
        worst = timedelta(seconds=(parts + 1) * self._channel.request_timeout)
        needed = self._clock() + worst
        if needed <= claim.token:
            return True
        if not await outbox.extend_claim(claim.session, claim.message.id, claim.token, needed):
            await claim.session.rollback()
            log.warning("message %s: claim lost before sending", claim.message.id)
            return False
        await claim.session.commit()
        claim.token = needed
        return True

    def _record(
        self,
        claim: _Claim,
        outcome: AttemptOutcome,
        err: ChannelError | None,
        sent: list[str],
    ) -> None:
        outbox.add_attempt(
            claim.session,
            claim.message.id,
            Channel.TELEGRAM,
            claim.attempt,
            outcome,
            self._clock(),
            external_id=progress.external_id(sent),
            error=f"{err.error_class}: {err.detail}" if err else None,
        )

    async def _settle(self, claim: _Claim, **values: Any) -> bool:
        held = await outbox.settle(claim.session, claim.message.id, claim.token, **values)
        if not held:
            # Our lease ran out and another worker owns the message now; its outcome wins.
            await claim.session.rollback()
            log.warning("message %s: claim lost; outcome dropped", claim.message.id)
            return False
        await claim.session.commit()
        return True

    async def _delivered(
        self, claim: _Claim, route: Route, sent: list[str], payload: OutboxPayload
    ) -> Handled | None:
        now = self._clock()
        self._record(claim, AttemptOutcome.DELIVERED, None, sent)
        # Kept while the bot may delete them: for self-destruct, the ephemeral button, DELETE
        # and /erase. A due deletion is stored with them, so it survives any restart.
        delete_at = deletion_due(
            now, self_destruct_seconds=payload.self_destruct_seconds, ephemeral=payload.ephemeral
        )
        copies.add(
            claim.session,
            user_id=claim.message.recipient_id,
            message_id=claim.message.id,
            chat_id=route.address.chat_id,
            telegram_ids=[int(part) for part in sent],
            sent_at=now,
            delete_at=delete_at,
        )
        # A digest's messages are delivered with it, in the same commit, pointing to its parts.
        await outbox.settle_carried(
            claim.session,
            claim.message.id,
            AttemptOutcome.DELIVERED,
            now,
            external_id=progress.external_id(sent),
            status=MessageStatus.DELIVERED,
            delivered_at=now,
            failure_reason=None,
        )
        # The content is wiped in the same commit that marks the message delivered.
        done = await self._settle(
            claim,
            status=MessageStatus.DELIVERED,
            delivered_at=now,
            encrypted_content=None,
            claimed_until=None,
            failure_reason=None,
            attempt_count=claim.message.attempt_count + 1,
        )
        if not done:
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
        claim: _Claim,
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
        return Handled(AttemptOutcome.RETRY, retry_at)

    async def _fail(
        self,
        claim: _Claim,
        error_class: str,
        reason: str,
        err: ChannelError | None = None,
        sent: list[str] | None = None,
    ) -> Handled | None:
        cause = err or ChannelError(error_class, reason)
        self._record(claim, AttemptOutcome.FAILED, cause, sent or [])
        await outbox.settle_carried(
            claim.session,
            claim.message.id,
            AttemptOutcome.FAILED,
            self._clock(),
            error=f"{cause.error_class}: {cause.detail}",
            status=MessageStatus.FAILED,
            failure_reason=reason[:200],
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
