"""The row of a digest: one new outbox message that carries several others.

Shared by the two places that fold messages together: quiet hours (gateway.deferred) and bursts
(gateway.delivery.coalesce). The members then point at it (`carried_by`) and settle when it does
(`outbox.settle_carried`), their own content wiped then; a digest refused for its content gives
them back to the queue instead, to go one by one (`outbox.unfold`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from gateway.content_cipher import ContentCipher
from gateway.outbox_payload import OutboxPayload
from storage.enums import MessageStatus, Priority
from storage.message_ids import new_message_id
from storage.models import Message

_PRIORITY_ORDER = (Priority.LOW, Priority.NORMAL, Priority.HIGH, Priority.URGENT)


def carrier_row(
    cipher: ContentCipher,
    members: Sequence[Message],
    payload: OutboxPayload,
    now: datetime,
    *,
    in_their_place: bool = False,
) -> Message:
    """A queued message, due now, for the members' person with their highest priority, the
    longest of their retentions and the first member's fallback chain (so if Telegram cannot
    take the digest, it falls back as they would have).

    `in_their_place`: it takes the oldest member's place in the queue (its creation and due
    time), so it goes out before messages that came after them; else it is new as of `now`.
    """
    if not members:
        raise ValueError("a digest carries at least one message")
    first = members[0]
    digest_id = new_message_id()
    return Message(
        id=digest_id,
        sender_token_id=None,  # the gateway's own message
        recipient_id=first.recipient_id,
        category=first.category,
        priority=max((m.priority for m in members), key=_PRIORITY_ORDER.index),
        status=MessageStatus.QUEUED,
        encrypted_content=cipher.seal(digest_id, payload.to_dict()),
        created_at=min(m.created_at for m in members) if in_their_place else now,
        next_attempt_at=min(m.next_attempt_at for m in members) if in_their_place else now,
        retention_expires_at=max(m.retention_expires_at for m in members),
        channels=list(first.channels),
    )
