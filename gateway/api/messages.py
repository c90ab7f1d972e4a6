"""GET /messages/{id}: delivery status of a message the caller sent. Never content."""

from __future__ import annotations

import uuid
from datetime import datetime

from aiohttp import web

from gateway.api.errors import error_response
from gateway.api.keys import SESSIONMAKER, request_token
from storage.enums import AttemptOutcome, Channel, MessageStatus
from storage.models import Message
from storage.repositories import messages


def public_status(status: MessageStatus) -> str:
    # "sending" is the worker's lease, an internal detail: to a caller the message is queued.
    return MessageStatus.QUEUED.value if status is MessageStatus.SENDING else status.value


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def telegram_message_ids(message: Message) -> list[int]:
    """Where it landed in Telegram (for a message carried by a digest: the digest's parts)."""
    for attempt in reversed(message.attempts):
        if (
            attempt.channel is Channel.TELEGRAM
            and attempt.outcome is AttemptOutcome.DELIVERED
            and attempt.external_id
        ):
            return [int(part) for part in attempt.external_id.split(",")]
    return []


NOT_FOUND = "no message with this id was sent by this token"


def message_id_of(request: web.Request) -> str | None:
    """The path's message id if it is one the gateway could have issued (a canonical UUID);
    anything else never reaches a query, so whatever a caller puts there stays out of SQL
    parameters and the logs that may show them."""
    raw = request.match_info["message_id"]
    try:
        canonical = str(uuid.UUID(raw))
    except ValueError:
        return None
    return raw if raw == canonical else None


async def message_status(request: web.Request) -> web.Response:
    token = request_token(request)
    message_id = message_id_of(request)
    if message_id is None:
        return error_response(404, "not_found", NOT_FOUND)
    async with request.app[SESSIONMAKER]() as session:
        message = await messages.sent_by(session, message_id, token.id)
    if message is None:
        # Same answer for "no such id" and "someone else's": ids reveal nothing.
        return error_response(404, "not_found", NOT_FOUND)
    return web.json_response(
        {
            "message_id": message.id,
            "status": public_status(message.status),
            "category": message.category.value,
            "priority": message.priority.value,
            "created_at": _iso(message.created_at),
            "delivered_at": _iso(message.delivered_at),
            "retention_expires_at": _iso(message.retention_expires_at),
            "failure_reason": message.failure_reason,
            "telegram_message_ids": telegram_message_ids(message),
            # Set when the message went out inside a digest (quiet hours) with others.
            "carried_by": message.carried_by,
            "attempts": [
                {
                    "channel": a.channel.value,
                    "attempt": a.attempt,
                    "outcome": a.outcome.value,
                    "error": a.error,
                    "attempted_at": _iso(a.attempted_at),
                }
                for a in message.attempts
            ],
        }
    )
