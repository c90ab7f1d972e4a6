"""/export: everything the gateway stores about one person, as a JSON-ready dict.

Each table's exported columns are listed here, next to the columns deliberately left out and
why (tests/test_export.py checks that together they cover every column, so a new column needs
a decision). Never exported: token hashes, and message content (only whether some is still
stored). Only rows of this person: other people's data never appears.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import Enum
from typing import Any

from sqlalchemy import Column, inspect
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.message_request import DEFAULT_RETENTION_SECONDS
from storage.models import (
    ApiToken,
    AuditEntry,
    Base,
    Contact,
    DeliveryAttempt,
    LogGroup,
    Message,
    TelegramCopy,
    Topic,
    User,
    UserPreferences,
    WorkerHeartbeat,
)
from storage.repositories import contacts, copies, groups, person_data
from storage.types import UTCDateTime, utcnow

FORMAT_VERSION = 1

# Exported columns, per model, in the order they appear in the document.
EXPORTED: dict[type[Base], tuple[str, ...]] = {
    User: ("id", "telegram_id", "language", "created_at"),
    LogGroup: ("chat_id", "is_forum", "linked_at", "unlinked_at"),
    Topic: ("category", "name", "message_thread_id"),
    ApiToken: ("id", "prefix", "scopes", "created_at", "last_used_at", "revoked_at"),
    Message: (
        "id",
        "sender_token_id",
        "category",
        "priority",
        "status",
        "idempotency_key_hash",
        "created_at",
        "retention_expires_at",
        "next_attempt_at",
        "claimed_until",
        "attempt_count",
        "delivered_at",
        "failure_reason",
        "carried_by",
        "channels",
        "channel_index",
        "channel_since",
        "delivered_via",
    ),
    DeliveryAttempt: ("channel", "attempt", "outcome", "external_id", "error", "attempted_at"),
    TelegramCopy: (
        "message_id",
        "chat_id",
        "telegram_message_id",
        "first_part_id",
        "sent_at",
        "delete_at",
        "retry_at",
        "delete_attempts",
        "last_error",
    ),
    Contact: (
        "channel",
        "state",
        "state_reason",
        "verified_at",
        "failing_since",
        "code_expires_at",
        "code_attempts",
        "created_at",
        "updated_at",
    ),
    AuditEntry: ("message_id", "channel", "category", "delivered_at"),
}

# Columns left out on purpose. UserPreferences is exported whole (every column but user_id).
NOT_EXPORTED: dict[type[Base], dict[str, str]] = {
    User: {},
    UserPreferences: {"user_id": "the profile's id"},
    LogGroup: {"id": "internal row id", "owner_id": "the profile's id"},
    Topic: {"id": "internal row id", "group_id": "the group it is listed under"},
    ApiToken: {
        "owner_id": "the profile's id",
        "token_hash": "a secret's hash: never leaves the database",
    },
    Message: {
        "recipient_id": "the profile's id",
        "encrypted_content": "content is never exported; `content_stored` tells if any is held",
    },
    DeliveryAttempt: {"id": "internal row id", "message_id": "the message it is listed under"},
    TelegramCopy: {"id": "internal row id", "user_id": "the profile's id"},
    Contact: {
        "id": "internal row id",
        "user_id": "the profile's id",
        "sealed": "the address and any secret, encrypted; /channels shows them masked",
        "code_hash": "a verification code's hash: never leaves the database",
        "unsubscribe_hash": "an unsubscribe token's hash: never leaves the database",
    },
    AuditEntry: {
        "id": "internal row id",
        "user_id": "the profile's id",
        "sealed_content": "content is never exported",
    },
    # The delivery worker's state (gateway.worker_heartbeat): no one's data, nothing exported.
    WorkerHeartbeat: dict.fromkeys(
        (
            "name",
            "beat_at",
            "running",
            "last_run_at",
            "last_error",
            "unknown_send_outcomes",
        ),
        "the delivery worker's state, of no person",
    ),
}


def _plain(value: Any) -> Any:
    """A JSON-ready value: datetimes as ISO 8601, enums as their value."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _pick(row: Base, names: Iterable[str]) -> dict[str, Any]:
    return {name: _plain(getattr(row, name)) for name in names}


def _fields(model: type[Base]) -> tuple[str, ...]:
    return EXPORTED[model]


def _preference_columns() -> list[Column[Any]]:
    skip = NOT_EXPORTED[UserPreferences]
    return [c for c in inspect(UserPreferences).columns if c.name not in skip]


def _default_of(column: Column[Any]) -> Any:
    """What a new preferences row would hold in `column` (timestamps: none yet)."""
    default = column.default
    if default is None or isinstance(column.type, UTCDateTime):
        return None
    if getattr(default, "is_scalar", False):
        return getattr(default, "arg", None)
    if getattr(default, "is_callable", False):
        return default.arg(None)  # type: ignore[attr-defined]  # SQLAlchemy wraps fn() as fn(ctx)
    return None


def _preferences(row: UserPreferences | None) -> dict[str, Any]:
    columns = _preference_columns()
    if row is None:
        values = {c.name: _plain(_default_of(c)) for c in columns}
    else:
        values = {c.name: _plain(getattr(row, c.key)) for c in columns}
    stored_retention = values.get("default_retention_seconds")
    return {
        "stored": row is not None,  # False: the person never changed anything; all defaults
        **values,
        "effective_default_retention_seconds": stored_retention or DEFAULT_RETENTION_SECONDS,
    }


def _group(group: LogGroup | None) -> dict[str, Any] | None:
    if group is None:
        return None
    topics = sorted(group.topics, key=lambda t: (t.category.value, t.id))
    return {
        **_pick(group, _fields(LogGroup)),
        "topics": [_pick(t, _fields(Topic)) for t in topics],
    }


def _message(message: Message) -> dict[str, Any]:
    return {
        **_pick(message, _fields(Message)),
        "content_stored": message.encrypted_content is not None,
        "attempts": [_pick(a, _fields(DeliveryAttempt)) for a in message.attempts],
    }


async def export_person(
    session: AsyncSession, user_id: int, *, now: datetime | None = None
) -> dict[str, Any]:
    """The person's export document; LookupError if there is no such person."""
    user = await session.get(User, user_id)
    if user is None:
        raise LookupError(f"no user {user_id}")
    group = await groups.group_of(session, user_id)
    return {
        "format_version": FORMAT_VERSION,
        "exported_at": (now or utcnow()).isoformat(),
        "profile": _pick(user, _fields(User)),
        "preferences": _preferences(await person_data.preferences_of(session, user_id)),
        "log_group": _group(group),
        "api_tokens": [
            _pick(t, _fields(ApiToken)) for t in await person_data.tokens_of(session, user_id)
        ],
        "messages": [_message(m) for m in await person_data.messages_of(session, user_id)],
        "telegram_copies": [
            _pick(c, _fields(TelegramCopy)) for c in await copies.of_user(session, user_id)
        ],
        "contacts": [_pick(c, _fields(Contact)) for c in await contacts.all_of(session, user_id)],
        "audit_entries_waiting": [
            _pick(e, _fields(AuditEntry))
            for e in await person_data.audit_entries_of(session, user_id)
        ],
    }
