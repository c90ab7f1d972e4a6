"""The gateway's own messages to a person (e.g. "these could not be deleted"), queued in the
outbox like any other so they get the same delivery, retries and retention. Never content."""

from __future__ import annotations

from datetime import datetime, timedelta

from gateway.content_cipher import ContentCipher
from gateway.outbox_payload import OutboxPayload
from storage.enums import Category, MessageStatus, Priority
from storage.message_ids import new_message_id
from storage.models import Message

NOTICE_RETENTION = timedelta(days=1)


def notice(
    cipher: ContentCipher,
    user_id: int,
    html: str,
    now: datetime,
    *,
    category: Category = Category.GENERAL,
) -> Message:
    """An outbox row carrying `html` (Telegram HTML, already escaped) to the person's log."""
    message_id = new_message_id()
    payload = OutboxPayload(kind="html", value=html, hashtags=("libral",))
    return Message(
        id=message_id,
        sender_token_id=None,  # from the gateway itself
        recipient_id=user_id,
        category=category,
        priority=Priority.NORMAL,
        status=MessageStatus.QUEUED,
        encrypted_content=cipher.seal(message_id, payload.to_dict()),
        created_at=now,
        next_attempt_at=now,
        retention_expires_at=now + NOTICE_RETENTION,
    )
