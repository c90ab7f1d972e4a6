"""Accepting a message: validate against the recipient's state, seal it, commit it to the outbox.

The one path into the outbox, shared by the HTTP API and the bot. "Accepted means durable":
the caller answers 202 only after `submit` returned, which is after the commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.content_cipher import ContentCipher
from gateway.message_request import MessageRequest
from gateway.outbox_payload import OutboxPayload
from storage.enums import MessageStatus
from storage.models import ApiToken, Message
from storage.repositories import groups
from storage.repositories import messages as message_repo

Clock = Callable[[], datetime]


class SubmissionError(Exception):
    """The request is well-formed but cannot be accepted; `status` is the HTTP status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Submitted:
    message_id: str
    status: MessageStatus
    retention_expires_at: datetime
    created: bool  # False: an earlier message with the same idempotency key was returned


def _existing(message: Message) -> Submitted:
    return Submitted(message.id, message.status, message.retention_expires_at, created=False)


async def _check_and_build(
    session: AsyncSession,
    cipher: ContentCipher,
    token: ApiToken,
    request: MessageRequest,
    now: datetime,
) -> Message:
    if request.recipient is not None:
        raise SubmissionError(
            422,
            "invalid_request",
            "recipient: a personal token sends to its owner only; leave recipient out",
        )
    group = await groups.linked_group_of(session, token.owner_id)
    if group is None:
        raise SubmissionError(
            409,
            "no_personal_log",
            "the recipient has no personal log group linked yet (run /setup in a forum group)",
        )
    thread_id = request.topic_thread_id()
    if thread_id is not None and groups.topic_by_thread(group, thread_id) is None:
        raise SubmissionError(
            422,
            "invalid_request",
            "context_labels.telegram.topic_id: not one of the recipient's personal log topics",
        )
    message_id = str(uuid.uuid4())
    payload = OutboxPayload(
        kind=request.content.kind,
        value=request.content.value,
        hashtags=tuple(request.hashtags),
        thread_id=thread_id,
        disable_preview=request.content.disable_preview,
    )
    return Message(
        id=message_id,
        sender_token_id=token.id,
        recipient_id=token.owner_id,
        category=request.resolved_category(),
        priority=request.priority,
        status=MessageStatus.QUEUED,
        encrypted_content=cipher.seal(message_id, payload.to_dict()),
        idempotency_key=request.idempotency_key,
        created_at=now,
        next_attempt_at=now,
        retention_expires_at=now + timedelta(seconds=request.retention_seconds),
    )


async def submit(
    sessionmaker: async_sessionmaker[AsyncSession],
    cipher: ContentCipher,
    token: ApiToken,
    request: MessageRequest,
    now: datetime,
) -> Submitted:
    """Commit the message to the outbox, or return the earlier one with the same key."""
    key = request.idempotency_key
    async with sessionmaker() as session:
        if key is not None:
            earlier = await message_repo.by_idempotency_key(session, token.id, key)
            if earlier is not None:
                if earlier.retention_expires_at > now:
                    return _existing(earlier)
                # Past its retention the earlier message no longer counts; make way for the new.
                await session.delete(earlier)
                await session.flush()
        message = await _check_and_build(session, cipher, token, request, now)
        session.add(message)
        try:
            await session.commit()
        except IntegrityError:
            # A concurrent request with the same key won the race: answer with its message.
            await session.rollback()
            if key is None:
                raise
            earlier = await message_repo.by_idempotency_key(session, token.id, key)
            if earlier is None:
                raise
            return _existing(earlier)
    return Submitted(message.id, message.status, message.retention_expires_at, created=True)
