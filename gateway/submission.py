"""Accepting a message: validate against the recipient's state, seal it, commit it to the outbox.

The one path into the outbox, shared by the HTTP API and the bot's /test. "Accepted means
durable": the caller answers 202 only after `submit` returned, which is after the commit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.content_cipher import ContentCipher
from gateway.group_commit import MAX_PENDING, GroupCommitter, Overloaded
from gateway.message_request import DEFAULT_RETENTION_SECONDS, MessageRequest
from gateway.outbox_payload import OutboxPayload
from gateway.recipient_cache import RecipientCache, RecipientSnapshot, read_snapshot
from gateway.routing import MessageFacts, Plan, plan_route
from storage.enums import MessageStatus
from storage.message_ids import new_message_id
from storage.models import Message
from storage.repositories import messages as message_repo
from storage.repositories import tokens as token_repo
from storage.repositories.messages import NewMessage

Clock = Callable[[], datetime]


class SubmissionError(Exception):
    """The request is well-formed but cannot be accepted; `status` is the HTTP status."""

    def __init__(
        self, status: int, code: str, message: str, *, retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after  # seconds, for a refusal that passes


# How long a request refused for overload is told to wait.
OVERLOADED_RETRY_AFTER = 1
NO_PERSONAL_LOG = "no_personal_log"


@dataclass(frozen=True)
class Sender:
    """Who submits: an API token (idempotency keys are per token), or the bot itself (None)."""

    token_id: int | None
    owner_id: int  # the recipient: a personal token sends to its owner only


@dataclass(frozen=True)
class Submitted:
    message_id: str
    status: MessageStatus
    retention_expires_at: datetime
    created: bool  # False: an earlier message with the same idempotency key was returned
    reason: str | None = None  # why it was suppressed
    deferred_until: datetime | None = None


def _submitted(message: Message | NewMessage, *, created: bool) -> Submitted:
    deferred = message.status is MessageStatus.DEFERRED
    return Submitted(
        message.id,
        message.status,
        message.retention_expires_at,
        created=created,
        reason=message.failure_reason if message.status is MessageStatus.SUPPRESSED else None,
        deferred_until=message.next_attempt_at if deferred else None,
    )


def _check_and_build(
    recipient: RecipientSnapshot,
    cipher: ContentCipher,
    sender: Sender,
    request: MessageRequest,
    now: datetime,
) -> NewMessage:
    if recipient.group_id is None and not recipient.verified_channels:
        raise SubmissionError(
            409,
            NO_PERSONAL_LOG,
            "the recipient has no personal log group linked yet (run /setup in a forum group) "
            "and no other verified channel",
        )
    thread_id = request.topic_thread_id()
    if (
        recipient.group_id is not None
        and thread_id is not None
        and thread_id not in recipient.thread_ids
    ):
        raise SubmissionError(
            422,
            "invalid_request",
            "context_labels.telegram.topic_id: not one of the recipient's personal log topics",
        )
    category = request.resolved_category()
    facts = MessageFacts(
        category,
        request.priority,
        tuple(request.hashtags),
        tuple(request.channels) if request.channels is not None else None,
        thread_id,
    )
    kept_until = now + timedelta(seconds=_retention(request, recipient))
    plan = plan_route(facts, recipient.preferences, recipient.routing, now, kept_until=kept_until)
    message_id = new_message_id()
    payload = OutboxPayload(
        kind=request.content.kind,
        value=request.content.value,
        hashtags=tuple(request.hashtags),
        thread_id=thread_id,
        disable_preview=request.content.disable_preview,
        silent=plan.silent,
        self_destruct_seconds=request.content.self_destruct_seconds,
        ephemeral=_ephemeral(request, recipient),
    )
    return NewMessage(
        id=message_id,
        sender_token_id=sender.token_id,
        recipient_id=sender.owner_id,
        category=category,
        priority=request.priority,
        status=_initial_status(plan),
        # A suppressed message is never sent: its content is not kept at all.
        encrypted_content=cipher.seal(message_id, payload.to_dict()) if plan.deliver else None,
        failure_reason=plan.reason,
        channels=[channel.value for channel in plan.channels],
        idempotency_key_hash=idempotency_digest(request.idempotency_key),
        created_at=now,
        next_attempt_at=plan.deferred_until or now,
        retention_expires_at=kept_until,
    )


async def _still_active(sessionmaker: async_sessionmaker[AsyncSession], sender: Sender) -> bool:
    if sender.token_id is None:
        return True
    async with sessionmaker() as session:
        return await token_repo.is_active(session, sender.token_id)


def _check_recipient(request: MessageRequest) -> None:
    if request.recipient is not None:
        raise SubmissionError(
            422,
            "invalid_request",
            "recipient: a personal token sends to its owner only; leave recipient out",
        )


def idempotency_digest(key: str | None) -> str | None:
    """What is stored and looked up for an idempotency key: never the caller's text itself
    (keys are free text, and SQL parameters can reach debug logs)."""
    return hashlib.sha256(key.encode()).hexdigest() if key is not None else None


def _retention(request: MessageRequest, recipient: RecipientSnapshot) -> int:
    if request.retention_seconds is not None:
        return request.retention_seconds
    if recipient.default_retention_seconds is not None:
        return recipient.default_retention_seconds
    return DEFAULT_RETENTION_SECONDS


def _ephemeral(request: MessageRequest, recipient: RecipientSnapshot) -> bool:
    if request.content.ephemeral is not None:
        return request.content.ephemeral
    return recipient.default_ephemeral


def _initial_status(plan: Plan) -> MessageStatus:
    if not plan.deliver:
        return MessageStatus.SUPPRESSED
    # Deferred rows wait for gateway.deferred to release them (alone, or in a digest).
    return MessageStatus.DEFERRED if plan.deferred_until is not None else MessageStatus.QUEUED


async def submit(
    sessionmaker: async_sessionmaker[AsyncSession],
    cipher: ContentCipher,
    sender: Sender,
    request: MessageRequest,
    now: datetime,
    committer: GroupCommitter | None = None,
    recipients: RecipientCache | None = None,
) -> Submitted:
    """Commit the message to the outbox, or return the earlier one with the same key.

    With a `committer`, the new row is committed together with concurrent submissions'. With
    `recipients` (bound to `sessionmaker`), the recipient's state comes from that cache.
    """
    token_id, key = sender.token_id, idempotency_digest(request.idempotency_key)
    if key is not None and token_id is not None:  # only a key needs a look before the checks
        async with sessionmaker() as session:
            earlier = await message_repo.by_idempotency_key(session, token_id, key)
            if earlier is not None:
                if earlier.retention_expires_at > now:
                    return _submitted(earlier, created=False)
                # Past its retention the earlier message no longer counts: the new one takes
                # its key. It is not deleted here: a worker may be sending it, or a digest
                # carry it, right now; the retention purge knows when it may go.
                await message_repo.release_idempotency_key(session, earlier.id)
                await session.commit()
    _check_recipient(request)
    if recipients is not None:
        recipient = await recipients.load(sender.owner_id)
    else:
        async with sessionmaker() as session:
            recipient = await read_snapshot(session, sender.owner_id)
    try:
        message = _check_and_build(recipient, cipher, sender, request, now)
    except SubmissionError as exc:
        # No log and no channel is also what a person erased meanwhile looks like (by another
        # process, since this one verified the token from its cache): then it is the token.
        if exc.code == NO_PERSONAL_LOG and not await _still_active(sessionmaker, sender):
            raise SubmissionError(401, "unauthorized", "unknown or revoked token") from None
        raise
    try:
        if committer is not None:
            await committer.commit(message)
        else:
            async with sessionmaker() as session:
                await message_repo.insert_new(session, [message])
                await session.commit()
    except Overloaded:
        raise SubmissionError(
            503,
            "overloaded",
            "more messages are waiting for their commit than this process takes; nothing was "
            "accepted, try again shortly",
            retry_after=OVERLOADED_RETRY_AFTER,
        ) from None
    except IntegrityError:
        # A concurrent request with the same key won the race: answer with its message.
        earlier = None
        if key is not None and token_id is not None:
            async with sessionmaker() as session:
                earlier = await message_repo.by_idempotency_key(session, token_id, key)
        if earlier is None:
            # Not the key: the row's token or recipient is gone (revoked with the person's
            # erasure since the token was verified, e.g. by another process's cache).
            raise SubmissionError(401, "unauthorized", "unknown or revoked token") from None
        return _submitted(earlier, created=False)
    return _submitted(message, created=True)


class Submitter:
    """`submit` plus what must follow a commit: waking the worker, or the deferred releaser."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        cipher: ContentCipher,
        *,
        clock: Clock,
        on_queued: Callable[[], None],
        on_deferred: Callable[[datetime], None] | None = None,
        on_retention: Callable[[datetime], None] | None = None,
        recipients: RecipientCache | None = None,
        announce_commits: bool = False,
        max_pending: int = MAX_PENDING,
    ) -> None:
        """After a commit: `on_queued()` for a message due now, `on_deferred(when)` for one held
        for quiet hours, `on_retention(deadline)` for every new record.

        `recipients`: the composition root's cache of recipient state, bound to `sessionmaker`
        (by default one of this submitter's own). `announce_commits`: tell another process's
        worker of each commit (see gateway.group_commit). `max_pending`: how many messages may
        wait for their commit before new ones are refused (503, overloaded)."""
        self._on_retention = on_retention
        self._sessionmaker = sessionmaker
        self.recipients = RecipientCache.of(sessionmaker, recipients)
        self.committer = GroupCommitter(
            sessionmaker, announce=announce_commits, max_pending=max_pending
        )
        self._cipher = cipher
        self._clock = clock
        self._on_queued = on_queued
        self._on_deferred = on_deferred

    async def submit(self, sender: Sender, request: MessageRequest) -> Submitted:
        result = await submit(
            self._sessionmaker,
            self._cipher,
            sender,
            request,
            self._clock(),
            self.committer,
            self.recipients,
        )
        if result.created:
            if result.status is MessageStatus.QUEUED:
                self._on_queued()
            elif result.deferred_until is not None and self._on_deferred is not None:
                self._on_deferred(result.deferred_until)
            if self._on_retention is not None:
                self._on_retention(result.retention_expires_at)
        return result
